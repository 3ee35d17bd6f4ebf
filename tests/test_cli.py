"""The command line: help everywhere, one readable line and exit 2 for user errors."""

import dataclasses
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

import pytest

from osteoscan.cli import build_parser, main, train_config_from_args
from osteoscan.data.labels import OsteopeniaPolicy, TaskName
from osteoscan.data.synth import make_synthetic_dataset
from osteoscan.models.registry import MODELS, MODES
from osteoscan.stats import DEFAULT_BOOTSTRAP
from osteoscan.training.config import (
    ACCELERATORS,
    DEFAULT_LR,
    PRECISIONS,
    STRATEGIES,
    TrainConfig,
)
from tests.conftest import interruptible

COMMANDS = ["synth", "train", "evaluate", "audit", "models"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: osteoscan " + command in capsys.readouterr().out


def _train_cnn3(data, out, *extra: str) -> int:
    """``osteoscan train`` of the cheap cnn3 configuration, in-process; returns the exit code."""
    return main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--model",
            "cnn3",
            "--mode",
            "scratch",
            *extra,
        ]
    )


def _assert_one_line_error(capsys, code, *fragments):
    err = capsys.readouterr().err
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("osteoscan: error:")]
    assert len(error_lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in error_lines[0]


def _id(value) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


def _subcommand(name: str):
    (subparsers,) = [a for a in build_parser()._actions if a.dest == "command"]
    return subparsers.choices[name]


def _action(command: str, dest: str):
    (action,) = [a for a in _subcommand(command)._actions if a.dest == dest]
    return action


def test_train_defaults_are_the_configs_field_by_field():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o"])
    parsed, default = train_config_from_args(args), TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        assert getattr(parsed, field.name) == getattr(default, field.name), field.name
    assert args.model == "resnet18" and args.overwrite is False


def test_choices_come_from_the_library():
    assert _action("train", "model").choices == tuple(MODELS)
    assert _action("train", "mode").choices == MODES
    assert _action("train", "task").choices == get_args(TaskName)
    assert _action("train", "osteopenia").choices == get_args(OsteopeniaPolicy)
    assert _action("train", "precision").choices == PRECISIONS
    assert _action("train", "accelerator").choices == ACCELERATORS
    assert _action("train", "strategy").choices == STRATEGIES
    for mode, lr in DEFAULT_LR.items():
        assert f"{lr:g} {mode}" in _action("train", "lr").help


def test_other_commands_take_the_library_defaults():
    assert _action("evaluate", "bootstrap").default == DEFAULT_BOOTSTRAP
    synth = inspect.signature(make_synthetic_dataset).parameters
    assert _action("synth", "n").default == synth["n"].default
    assert _action("synth", "size").default == synth["image_size"].default
    assert _action("synth", "seed").default == synth["seed"].default


def test_synth_views_write_the_joint_truth_and_a_bad_mix_is_one_line(tmp_path, capsys):
    out = tmp_path / "views"
    argv = ["synth", "--out", str(out), "--n", "6", "--size", "96"]
    assert main([*argv, "--views", "single=0.5,bilateral=0.5"]) == 0
    assert "views single 0.50, bilateral 0.50" in capsys.readouterr().out
    truth = json.loads((out / "joints.json").read_text())["images"]
    assert len(truth) == 6 and {v["view"] for v in truth.values()} <= {"single", "bilateral"}
    knees = {v["view"]: len(v["joints"]) for v in truth.values()}
    assert knees.get("bilateral", 2) == 2 and knees.get("single", 1) == 1
    assert main([*argv, "--views", "bilateral"]) == 0
    truth = json.loads((out / "joints.json").read_text())["images"]
    assert {v["view"] for v in truth.values()} == {"bilateral"}
    assert main([*argv]) == 0  # no --views: the single-knee set as before, no sidecar
    assert not (out / "joints.json").exists()
    capsys.readouterr()
    assert main([*argv, "--views", "single=lots"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "osteoscan: error: synthetic views 'single=lots': share 'lots' is not a number"


SWITCHES = [
    (["--model", "vgg16"], "model", "vgg16"),
    (["--mode", "frozen", "--frozen-views", "3"], "frozen_views", 3),
    (["--lr", "0.01"], "lr", 0.01),
    (["--no-augment"], "augment", False),
    (["--no-progress"], "progress", False),
    (["--strict"], "strict", True),
    (["--keep-conflicts"], "keep_conflicts", True),
    (["--deterministic"], "deterministic", True),
    (["--threshold", "youden"], "threshold", "youden"),
    (["--devices", "2"], "devices", 2),
    (["--cache-dir", "c"], "cache_dir", Path("c")),
]


@pytest.mark.parametrize(("flags", "field", "expected"), SWITCHES, ids=_id)
def test_each_flag_reaches_its_field(flags, field, expected):
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", *flags])
    assert getattr(train_config_from_args(args), field) == expected


def test_hflip_and_task_reach_the_nested_configs():
    argv = ["train", "--data", "d", "--out", "o", "--hflip", "--task", "three-class"]
    config = train_config_from_args(build_parser().parse_args(argv))
    assert config.augment_config.hflip is True and config.task.name == "three-class"


def _refused_line(capsys, argv) -> str:
    """Run ``main(argv)``; assert exit 2 with one error line and no traceback; return the line."""
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's own refusals (a wrong type or choice)
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1, err
    return error_lines[0]


# (flags, fragment of the one error line): each refused before any data is read
REFUSED = [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-1"], "--epochs"),
    (["--image-size", "0"], "--image-size"),
    (["--image-size", "-3"], "--image-size"),
    (["--model", "cnn3", "--mode", "scratch", "--image-size", "7"], "at least 8 pixels"),
    (["--model", "vgg16", "--image-size", "31"], "at least 32 pixels"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-1"], "--batch-size"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "-0.001"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--weight-decay", "-0.1"], "--weight-decay"),
    (["--workers", "-1"], "--workers"),
    (["--devices", "0"], "--devices"),
    (["--devices", "1.5"], "--devices"),
    (["--num-nodes", "0"], "--num-nodes"),
    (["--val-fraction", "0"], "--val-fraction"),
    (["--val-fraction", "1"], "--val-fraction"),
    (["--patience", "-1"], "--patience"),
    (["--mode", "frozen", "--frozen-views", "0"], "--frozen-views"),
    (["--frozen-views", "2"], "--mode frozen"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**32)], "--seed"),
    (["--strategy", "ddp2"], "--strategy"),
    (["--accelerator", "quantum"], "--accelerator"),
    (["--threshold", "1.5"], "--threshold"),
    (["--threshold", "otsu"], "--threshold"),
    (["--model", "cnn3", "--mode", "finetune"], "scratch"),
    (["--model", "resnet51"], "resnet50"),
    (["--weights-sha256", "ab" * 32], "--weights"),
]


@pytest.mark.parametrize(("flags", "fragment"), REFUSED, ids=_id)
def test_refused_options_get_one_line(flags, fragment, tmp_path, capsys):
    argv = ["train", "--data", str(tmp_path / "no-data"), "--out", str(tmp_path / "b"), *flags]
    line = _refused_line(capsys, argv)
    assert fragment in line
    assert "no-data" not in line  # refused before the data is even looked for
    assert not (tmp_path / "b").exists()


def test_scratch_mode_refuses_a_weights_file(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not read")
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "b"), "--mode", "scratch"]
    line = _refused_line(capsys, [*argv, "--model", "cnn3", "--weights", str(weights)])
    assert "--weights" in line and "scratch" in line


def test_cache_dir_naming_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "cache").write_text("mine")
    (tmp_path / "data").mkdir()
    argv = ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "b")]
    line = _refused_line(capsys, [*argv, "--cache-dir", str(tmp_path / "cache")])
    assert "--cache-dir" in line and "is a file" in line
    assert (tmp_path / "cache").read_text() == "mine"


def test_gpu_refused_on_a_machine_without_one(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "b")]
    line = _refused_line(capsys, [*argv, "--accelerator", "gpu"])
    assert "--accelerator" in line and "no such device" in line


def test_missing_data_folder(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "b")])
    _assert_one_line_error(capsys, code, "nope")


def test_pretrained_weights_missing_offline(synth_dir, tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            str(synth_dir),
            "--out",
            str(tmp_path / "b"),
            "--model",
            "resnet18",
            "--mode",
            "finetune",
            "--image-size",
            "48",
        ]
    )
    _assert_one_line_error(capsys, code, "resnet18-f37072fd.pth", "--weights")
    assert not (tmp_path / "b").exists()


def test_class_with_no_images(tmp_path, synth_dir, capsys):
    data = tmp_path / "data"
    shutil.copytree(synth_dir / "normal", data / "normal")
    code = _train_cnn3(data, tmp_path / "b")
    _assert_one_line_error(capsys, code, "osteoporosis")


def test_bad_manifest_rows_listed_and_strict_is_fatal(synth_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    with open(data / "manifest.csv", "a") as fh:
        fh.write("normal/missing.png,P9,0.1,\nnormal/synth_0001.png,P9,abc,\n")
    code = _train_cnn3(data, tmp_path / "b", "--strict")
    _assert_one_line_error(capsys, code, "manifest.csv", "--strict")


def test_evaluate_missing_bundle(tmp_path, synth_dir, capsys):
    code = main(["evaluate", str(tmp_path), "--data", str(synth_dir)])
    _assert_one_line_error(capsys, code, "not a model bundle")


@pytest.mark.slow
def test_train_then_evaluate_json_through_the_real_entry_point(synth_dir, tmp_path, run_cli):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    (data / "manifest.csv").unlink()  # read the class folders, where the broken file sits
    (data / "normal" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    done = run_cli.quick_train(data, tmp_path / "b")
    assert done.returncode == 0, done.stderr
    assert "bundle:" in done.stdout and "broken.png" in done.stderr
    done = run_cli(
        "evaluate", str(tmp_path / "b"), "--data", str(synth_dir), "--json", "--bootstrap", "200"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc"):
        lo, hi = doc[key]["ci95"]
        if doc[key]["value"] is not None:  # null: undefined, e.g. precision with no positive call
            assert lo <= doc[key]["value"] <= hi
    assert doc["roc_auc"]["value"] is not None and doc["accuracy"]["value"] is not None
    assert doc["n"] == sum(map(sum, doc["confusion_matrix"]))


def test_synth_writes_a_dataset_train_can_read(tmp_path):
    assert main(["synth", "--out", str(tmp_path / "s"), "--n", "12", "--size", "64"]) == 0
    assert (tmp_path / "s" / "manifest.csv").is_file()


HEAVY = ("torch", "torchvision", "lightning")
_IMPORTS_AFTER_MAIN = f"""
import sys
from osteoscan.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(sorted(set({HEAVY!r}) & set(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["models"],
        ["train", "--data", "d", "--out", "o", "--epochs", "0"],
        [
            "train",
            "--data",
            "d",
            "--out",
            "o",
            "--model",
            "cnn3",
            "--mode",
            "scratch",
            "--image-size",
            "7",
        ],
    ],
    ids=_id,
)
def test_help_models_and_argument_errors_import_no_torch(argv):
    """Heavy imports belong to the commands that need them (needs a torch-free model registry)."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER_MAIN, *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stderr.splitlines()[-1] == "[]", done.stderr


def test_a_closed_pipe_ends_quietly(run_cli):
    """``osteoscan ... | head -1``: the reader is gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            run_cli.argv("models"), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


@pytest.mark.parametrize(
    ("signal_number", "exit_code", "message"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted (Ctrl-C)")],
)
def test_a_signal_outside_training_exits_with_a_message(
    signal_number, exit_code, message, tmp_path, run_cli
):
    out = tmp_path / "synth"
    process = subprocess.Popen(
        run_cli.argv("synth", "--out", out, "--n", "5000", "--size", "128"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 300
    while not any(out.glob("*/synth_*.png")):  # past start-up: the command is at work
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "synth wrote nothing in 300 s"
        time.sleep(0.05)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == exit_code, stderr
    assert stderr.strip().splitlines()[-1] == f"osteoscan: {message}"
    assert "Traceback" not in stderr
    assert "wrote" not in stdout  # it did not pass for success
    assert not (out / "manifest.csv").exists()


def _write_undecodable_dicom(path) -> None:
    """An RLE-compressed DICOM whose pixel data no decoder can read (pydicom logs a traceback)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = RLELossless
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = encapsulate([b"\x00not run-length encoded" * 4])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("verbose", [False, True])
def test_library_tracebacks_reach_the_terminal_only_with_verbose(verbose, tmp_path, capsys):
    data = tmp_path / "data"
    make_synthetic_dataset(data, n=12, seed=0, image_size=64)
    (data / "manifest.csv").unlink()  # scan the folders, where the DICOM sits
    _write_undecodable_dicom(data / "normal" / "compressed.dcm")
    flags = ["-v"] if verbose else []
    assert main([*flags, "audit", str(data), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "compressed.dcm" in captured.out  # osteoscan's own finding names the file
    assert "ERROR pydicom" in captured.err  # the library's record is still shown, on one line
    assert ("Traceback" in captured.err) is verbose


def test_a_forked_worker_still_dies_of_sigterm():
    """Pools stop forked workers with SIGTERM; under the command's handler they must still die.

    (With the handler raising in them, a worker could die holding the pool's task-queue lock and
    ``train`` hung forever after decoding.)
    """
    import multiprocessing

    from osteoscan.cli import _sigterm_raises

    with _sigterm_raises():
        worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
        worker.start()
        time.sleep(0.5)
        worker.terminate()
        worker.join(30)
    assert worker.exitcode == -signal.SIGTERM


def test_forked_decoding_workers_are_stopped_not_hung(tmp_path, run_cli):
    """``train`` decodes in a forked pool, then answers; here with one class unreadable."""
    data = tmp_path / "data"
    make_synthetic_dataset(data, n=40, seed=0, image_size=48)
    (data / "manifest.csv").unlink()
    for index in range(40):  # enough files for the parallel decoder; one class unreadable
        (data / "osteoporosis" / f"broken_{index}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    for image in (data / "osteoporosis").glob("synth_*.png"):
        image.unlink()
    done = run_cli("train", "--data", data, "--out", tmp_path / "b", "--model", "cnn3",
                   "--mode", "scratch", "--image-size", "48", timeout=600)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "no readable images of class osteoporosis" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["synth", "--out", "{tmp}/s", "--n", "3", "--seed", "-1"],
        ["evaluate", "{tmp}/no-bundle", "--data", "{tmp}", "--bootstrap", "0"],
        ["evaluate", "{tmp}/no-bundle", "--data", "{tmp}", "--seed", "-1"],
    ],
)
def test_seed_and_bootstrap_outside_their_range_get_one_line(argv, tmp_path, capsys):
    from osteoscan.cli import main

    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("osteoscan: error:")
    assert "--bootstrap" in err[0] or "seed" in err[0]
