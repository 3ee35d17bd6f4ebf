"""``osteoscan roi``: crops, roi.json and the contact sheet for a folder, failures listed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from osteoscan.cli import main
from osteoscan.data.synth import make_synthetic_dataset
from osteoscan.roi import RoiConfig


def test_roi_command_writes_crops_sheet_and_lists_failures(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    views = {"single": 0.4, "bilateral": 0.4, "long-leg": 0.2}
    make_synthetic_dataset(data, n=8, seed=4, image_size=128, views=views)
    Image.fromarray(np.zeros((120, 90), dtype=np.uint8)).save(data / "blank.png")
    (data / "broken.png").write_bytes(b"not a png")
    truth = json.loads((data / "joints.json").read_text())["images"]
    expected_knees = sum(len(entry["joints"]) for entry in truth.values())

    out = tmp_path / "out"
    assert main(["roi", str(data), "--out", str(out), "--size", "64"]) == 0
    printed = capsys.readouterr().out
    assert "knees found in 8 of 10 images" in printed
    assert "blank.png: no knee found" in printed
    assert "broken.png" in printed

    crops = sorted(out.glob("crops/**/*.png"))
    assert len(crops) == expected_knees
    with Image.open(crops[0]) as crop:
        assert crop.size == (64, 64)
    summary = json.loads((out / "roi.json").read_text())
    assert summary["found"] == 8 and summary["images"] == 10
    sheet = (out / "roi.html").read_text()
    assert "Knee ROI contact sheet" in sheet and "No knee found" in sheet
    assert sheet.count("<figure") == 9  # every decodable source, boxes drawn


def test_roi_command_refuses_a_missing_path(tmp_path, capsys) -> None:
    assert main(["roi", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_roi_help_shows_the_library_defaults(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["roi", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: osteoscan roi" in text
    assert f"default {RoiConfig().roi_scale:g}" in text
