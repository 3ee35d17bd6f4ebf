"""A tiny study's data: synthetic phantoms with a planted duplicate, plus an external set that
shares one image with the study data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from osteoscan.data.synth import make_synthetic_dataset

PLANTED_COPY = "normal/planted_copy.png"
FROM_STUDY = "normal/from_study.png"


def _append_row(root: Path, relative: str, patient_id: str, source_row: str) -> None:
    _, _, t_score, label = source_row.split(",")
    with open(root / "manifest.csv", "a") as fh:
        fh.write(f"{relative},{patient_id},{t_score},{label}\n")


def _first_normal_row(root: Path) -> str:
    return next(
        line
        for line in (root / "manifest.csv").read_text().splitlines()
        if line.startswith("normal/")
    )


@pytest.fixture(scope="session")
def study_data(tmp_path_factory) -> dict[str, Path]:
    """``data``: 40 phantoms + a copy of one under another name and patient id;
    ``external``: 16 other phantoms + a copy of a study image; ``original``: the copied file."""
    root = tmp_path_factory.mktemp("study-data")
    data, external = root / "data", root / "external"
    make_synthetic_dataset(data, n=40, seed=3, image_size=64)
    row = _first_normal_row(data)
    original = data / row.split(",")[0]
    shutil.copyfile(original, data / PLANTED_COPY)
    _append_row(data, PLANTED_COPY, "PLANTED", row)
    make_synthetic_dataset(external, n=16, seed=9, image_size=64)
    shutil.copyfile(original, external / FROM_STUDY)
    _append_row(external, FROM_STUDY, "EXT-COPY", row)
    return {"data": data, "external": external, "original": original, "root": root}


def write_config(path: Path, configurations: list[dict], **top) -> Path:
    document = {
        "reference": configurations[0]["name"],
        "folds": 2,
        "training": {"image_size": 32, "epochs": 1, "batch_size": 16, "patience": 2},
        "configurations": configurations,
        **top,
    }
    path.write_text(yaml.safe_dump(document))
    return path


CNN3 = {"name": "cnn3", "model": "cnn3", "mode": "scratch", "published_accuracy": 0.66}
RESNET18 = {"name": "r18", "model": "resnet18", "mode": "scratch"}
