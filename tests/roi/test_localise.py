"""The knee localiser on synthetic phantoms whose joint centres are known, and on non-knees."""

from __future__ import annotations

import math

import numpy as np
import pytest

from osteoscan.data.synth import Anatomy, render_view
from osteoscan.roi.config import RoiConfig
from osteoscan.roi.localise import find_knees

# A detected centre is right when it lies within this share of the true condyle width of the
# true joint-space centre (measured on 190 knees of 150 mixed phantoms: worst 0.078).
CENTRE_TOLERANCE = 0.1
WIDTH_RANGE = (0.6, 1.4)  # measured joint width / true condyle width


def _phantom(view: str, seed: int, size: int = 192):
    rng = np.random.default_rng(seed)
    image, truths = render_view(view, -1.0, rng, size, Anatomy.sample(rng))
    return image.astype(np.float32) / 255.0, truths


def _assert_matches(detection, truths) -> None:
    assert len(detection.knees) == len(truths), detection.reason
    for knee, truth in zip(detection.knees, truths, strict=True):
        error = math.hypot(knee.centre_x - truth.x, knee.centre_y - truth.y)
        assert error <= CENTRE_TOLERANCE * truth.width, (knee, truth)
        assert WIDTH_RANGE[0] <= knee.joint_width / truth.width <= WIDTH_RANGE[1]
        assert 0.0 < knee.confidence <= 1.0


@pytest.mark.parametrize("seed", range(6))
def test_single_knee_phantom_centre_within_tolerance(seed: int) -> None:
    pixels, truths = _phantom("single", seed)
    detection = find_knees(pixels)
    _assert_matches(detection, truths)
    assert detection.knees[0].side is None  # one knee alone: its side is not guessed


@pytest.mark.parametrize("seed", range(4))
def test_bilateral_phantom_gives_two_knees_with_sides(seed: int) -> None:
    pixels, truths = _phantom("bilateral", seed)
    detection = find_knees(pixels)
    _assert_matches(detection, truths)
    assert [knee.side for knee in detection.knees] == ["right", "left"]
    assert [truth.side for truth in truths] == ["right", "left"]


def test_bilateral_without_display_convention_leaves_sides_unknown() -> None:
    pixels, _ = _phantom("bilateral", 0)
    detection = find_knees(pixels, RoiConfig(radiological_display=False))
    assert [knee.side for knee in detection.knees] == [None, None]


def test_max_knees_one_keeps_a_single_knee_of_a_bilateral_view() -> None:
    pixels, _ = _phantom("bilateral", 1)
    assert len(find_knees(pixels, RoiConfig(max_knees=1)).knees) == 1


@pytest.mark.parametrize("seed", range(3))
def test_long_leg_phantom_centre_within_tolerance(seed: int) -> None:
    pixels, truths = _phantom("long-leg", seed, size=160)
    _assert_matches(find_knees(pixels), truths)


def _blank() -> np.ndarray:
    return np.zeros((300, 200), dtype=np.float32)


def _noise() -> np.ndarray:
    return np.random.default_rng(0).random((300, 300), dtype=np.float32)


def _gradient() -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, 256, dtype=np.float32), (256, 1))


def _blob() -> np.ndarray:
    y, x = np.mgrid[0:256, 0:256]
    return np.exp(-(((x - 128) / 50.0) ** 2 + ((y - 128) / 70.0) ** 2)).astype(np.float32)


@pytest.mark.parametrize("make", [_blank, _noise, _gradient, _blob])
def test_non_knee_images_give_no_knee_found_with_a_reason(make) -> None:
    detection = find_knees(make())
    assert not detection.found
    assert detection.knees == ()
    assert detection.reason


def test_detection_is_deterministic_and_reports_source_coordinates() -> None:
    pixels, _ = _phantom("single", 3, size=256)
    assert find_knees(pixels) == find_knees(pixels.copy())
    detection = find_knees(pixels)
    assert (detection.image_width, detection.image_height) == (256, 256)


def test_pixel_spacing_gives_millimetres_and_rejects_impossible_joints() -> None:
    pixels, truths = _phantom("single", 2, size=256)
    plausible = 80.0 / truths[0].width  # mm per pixel that makes the knee 80 mm wide
    knee = find_knees(pixels, pixel_spacing=(plausible, plausible)).knees[0]
    assert 50.0 < knee.joint_width_mm < 115.0
    giant = find_knees(pixels, pixel_spacing=(2.0, 2.0))  # a ~300 mm "knee"
    assert not giant.found
    assert "mm wide" in giant.reason
