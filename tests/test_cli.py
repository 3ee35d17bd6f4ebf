"""The command line: help everywhere, one readable line and exit 2 for user errors."""

import json
import shutil

import pytest

from osteoscan.cli import main

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


def test_unknown_model(synth_dir, tmp_path, capsys):
    code = main(
        ["train", "--data", str(synth_dir), "--out", str(tmp_path / "b"), "--model", "resnet51"]
    )
    _assert_one_line_error(capsys, code, "resnet51", "resnet50")


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
