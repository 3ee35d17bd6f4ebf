"""The study's ``roi: knee`` key: read per configuration, passed into TrainConfig, and refused by
the runner (with what to do) until it prepares knee crops."""

from pathlib import Path

import pytest

from osteoscan.errors import BadConfigError
from osteoscan.roi import RoiConfig
from osteoscan.study.config import load_study_config, parse_study_config

ROI_STUDY = Path(__file__).resolve().parents[2] / "src/osteoscan/study/roi_study.yaml"


def _document(**extra) -> dict:
    return {
        "configurations": [
            {"name": "cnn3", "model": "cnn3", "mode": "scratch"},
            {"name": "cnn3-roi", "model": "cnn3", "mode": "scratch", **extra},
        ]
    }


def test_roi_study_pairs_every_configuration_with_its_knee_roi_twin():
    study = load_study_config(ROI_STUDY)
    names = {c.name: c for c in study.configurations}
    plain = [c for c in study.configurations if c.roi == "none"]
    assert len(plain) == 6 and len(names) == 12
    for c in plain:
        twin = names[f"{c.name}-roi"]
        assert (twin.model, twin.mode, twin.roi) == (c.model, c.mode, "knee")
        assert twin.roi_config == RoiConfig() and c.roi_config is None


def test_a_bad_roi_value_is_named():
    with pytest.raises(BadConfigError, match=r"'cnn3-roi': roi 'hip' is not one of none, knee"):
        parse_study_config(_document(roi="hip"), "s.yaml")


def test_the_runner_passes_roi_into_train_config_and_refuses_to_prepare_it(tmp_path):
    from osteoscan.study.runner import RunOptions, resolve_configurations, run_study

    options = RunOptions(config=parse_study_config(_document(roi="knee"), "s.yaml"))
    resolved = {c.name: c.train.roi for c in resolve_configurations(options)}
    assert resolved == {"cnn3": None, "cnn3-roi": RoiConfig()}
    assert options.config.to_dict()["configurations"][1]["roi"] == "knee"
    with pytest.raises(BadConfigError, match=r"cnn3-roi: 'roi: knee' is read, but the study"):
        run_study(tmp_path / "data", tmp_path / "out", options)
