"""``osteoscan study --plan``: one command per unit, and the weights check before any training."""

from __future__ import annotations

from osteoscan.cli import main
from tests.study.conftest import CNN3, RESNET18, write_config


def _main(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_plan_prints_one_command_per_unit(tmp_path, capsys):
    config = write_config(tmp_path / "study.yaml", [CNN3, RESNET18])
    out = tmp_path / "o"
    code, stdout, stderr = _main(
        capsys, "study", "--data", tmp_path / "data", "--out", out, "--config", config, "--plan"
    )
    assert code == 0, stderr
    commands = stdout.strip().splitlines()
    assert len(commands) == 5 and commands[-1] == f"osteoscan report {out}"
    assert commands[3].startswith(f"osteoscan study --data {tmp_path / 'data'} --out {out}")
    assert commands[3].endswith("--only r18 --repeat 1 --fold 2 --no-report")
    assert "study plan: 4 unit(s), 4 to run" in stderr


def test_missing_imagenet_weights_stop_the_study_before_training(tmp_path, capsys):
    out = tmp_path / "o"
    code, _, stderr = _main(capsys, "study", "--data", tmp_path, "--out", out, "--plan")
    assert code == 2
    assert "ResNet50_Weights.IMAGENET1K_V1 expected at" in stderr
    assert "VGG16_Weights.IMAGENET1K_V1 expected at" in stderr
    assert "--no-pretrained" in stderr and not (out / "units").exists()
    code, stdout, stderr = _main(
        capsys, "study", "--data", tmp_path, "--out", out, "--plan", "--no-pretrained"
    )
    assert code == 0, stderr
    assert "no ImageNet weights (--no-pretrained)" in stderr
    assert "cnn3-scratch: cnn3 scratch, 224 px, no pretrained weights needed" in stderr
    assert len(stdout.strip().splitlines()) == 6 * 5 + 1


def test_report_of_a_folder_that_is_no_study_says_so(tmp_path, capsys):
    code, _, stderr = _main(capsys, "report", tmp_path)
    assert code == 2
    assert f"{tmp_path}: not a study folder (no study.json)" in stderr


def test_unknown_only_name_is_named(tmp_path, capsys):
    config = write_config(tmp_path / "study.yaml", [CNN3])
    code, _, stderr = _main(
        capsys,
        "study",
        "--data",
        tmp_path,
        "--out",
        tmp_path / "o",
        "--config",
        config,
        "--only",
        "cnn4",
        "--plan",
    )
    assert code == 2 and "no configuration named 'cnn4'" in stderr and "choose from cnn3" in stderr
