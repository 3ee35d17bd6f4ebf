"""The localiser on real radiographs (../shared/data): crops contain the joint space."""

from __future__ import annotations

import numpy as np
import pytest

from osteoscan.roi.batch import image_paths, locate, run_roi
from osteoscan.roi.crop import crop_knees
from osteoscan.roi.localise import find_knees

pytestmark = pytest.mark.realdata


def test_fullres_crops_are_centred_on_a_joint_space(fullres_samples) -> None:
    """The joint space is the darkest row band in the middle of the crop, with brighter bone
    (condyles above, plateau below) on both sides."""
    for path in image_paths(fullres_samples):
        pixels, detection = locate(path)
        assert len(detection.knees) == 1, f"{path.name}: {detection.reason}"
        (crop,) = crop_knees(pixels, detection, size=128)
        rows = crop.pixels[:, 32:96].mean(axis=1)
        middle = rows[45:83]
        gap_row = 45 + int(np.argmin(middle))
        assert abs(gap_row - 64) <= 6, f"{path.name}: darkest row {gap_row}, not the centre"
        assert middle.min() < rows[19:45].mean() - 0.05, path.name
        assert middle.min() < rows[83:109].mean() - 0.05, path.name


@pytest.mark.slow
def test_knees_found_on_at_least_98_percent_of_the_372_images(real_data, tmp_path) -> None:
    report = run_roi(real_data, tmp_path, write_crops=False)
    assert len(report.images) == 372
    assert report.found / 372 >= 0.98, [f"{i.path}: {i.reason}" for i in report.failures]
    assert "No knee found" in report.sheet.read_text()


def _height(pixels: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    width = round(pixels.shape[1] * height / pixels.shape[0])
    return np.asarray(Image.fromarray(pixels, mode="F").resize((width, height)))


def test_two_real_knees_side_by_side_give_two_knees_where_each_was_alone(fullres_samples) -> None:
    """A bilateral view made of two real radiographs (the second mirrored, as a left knee)."""
    right_path, left_path = image_paths(fullres_samples)[1:3]
    right = _height(locate(right_path)[0], 900)
    left = _height(locate(left_path)[0], 900)[:, ::-1]
    both = np.concatenate([right, left], axis=1)
    detection = find_knees(both)
    assert [knee.side for knee in detection.knees] == ["right", "left"], detection.reason
    alone = [find_knees(right).knees[0], find_knees(left).knees[0]]
    offsets = [0, right.shape[1]]
    for knee, single, offset in zip(detection.knees, alone, offsets, strict=True):
        error = np.hypot(knee.centre_x - single.centre_x - offset, knee.centre_y - single.centre_y)
        assert error < 0.1 * single.joint_width
