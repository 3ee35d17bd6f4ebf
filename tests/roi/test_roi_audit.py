"""``osteoscan audit --roi knee``: knee failures listed, shortcut check on crops beside images."""

import json

import numpy as np
import pytest
from PIL import Image

from osteoscan.audit import run_audit
from osteoscan.cli import main
from osteoscan.data.synth import make_synthetic_dataset
from osteoscan.roi import RoiConfig


@pytest.fixture(scope="module")
def framed_by_class(tmp_path_factory):
    """Phantoms whose normal images alone carry a wide black margin: the file's width gives
    the label away, the knee crop does not."""
    data = tmp_path_factory.mktemp("framed")
    make_synthetic_dataset(data, n=48, seed=7, image_size=128)
    for path in (data / "normal").glob("*.png"):
        pixels = np.asarray(Image.open(path))
        framed = np.zeros((pixels.shape[0], pixels.shape[1] + 96), dtype=pixels.dtype)
        framed[:, : pixels.shape[1]] = pixels
        Image.fromarray(framed).save(path)
    Image.fromarray(np.zeros((128, 128), np.uint8)).save(data / "normal" / "blank.png")
    with open(data / "manifest.csv", "a") as manifest:
        manifest.write("normal/blank.png,blank-patient,0.50,normal\n")
    return data


def test_the_crop_shortcut_check_sees_past_the_framing(framed_by_class):
    result = run_audit(framed_by_class, workers=1, roi=RoiConfig())
    roi = result.roi
    assert result.shortcut.auc >= 0.75  # the margin tells normal images from the file alone
    assert roi.shortcut.auc is not None and roi.shortcut.auc < result.shortcut.auc - 0.2
    assert roi.shortcut.n_images == roi.n_crops  # every crop is a sample, all are labelled
    assert [result.paths[i].rsplit("/", 1)[-1] for i, _ in roi.failures][-1:] == ["blank.png"]
    assert roi.n_found == roi.n_images - len(roi.failures)


def test_audit_command_reports_roi_failures_and_both_checks(framed_by_class, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["audit", str(framed_by_class), "--roi", "knee", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Knee ROI: knees found in" in printed
    assert "blank.png: no knee found" in printed
    assert "whole images (file properties): AUC" in printed
    assert "knee crops (crop scale, framing, edge exposure): AUC" in printed
    document = json.loads((out / "audit.json").read_text())
    assert document["roi"]["settings"] == RoiConfig().to_dict()
    assert document["roi"]["shortcut"]["features"][0] == "log_crop_side"
    assert any(f["path"].endswith("blank.png") for f in document["roi"]["failures"])
    html = (out / "audit.html").read_text()
    assert "Knee ROI: knees found in" in html and "knee crops (crop scale" in html
    # without --roi the audit is as before
    assert main(["audit", str(framed_by_class), "--json"]) == 0
    assert "roi" not in json.loads(capsys.readouterr().out)
