"""Standard ROI crops: scale, placement, the way back to source pixels, mirroring, settings."""

from __future__ import annotations

import numpy as np
import pytest

from osteoscan.data.synth import Anatomy, render_view
from osteoscan.errors import BadConfigError
from osteoscan.roi.config import RoiConfig
from osteoscan.roi.crop import crop_box, crop_knees
from osteoscan.roi.localise import Knee, KneeDetection, find_knees


def _bilateral() -> np.ndarray:
    rng = np.random.default_rng(5)
    image, _ = render_view("bilateral", 0.0, rng, 192, Anatomy.sample(rng))
    return image.astype(np.float32) / 255.0


def test_crop_is_a_square_of_the_requested_size_named_by_side() -> None:
    pixels = _bilateral()
    crops = crop_knees(pixels, find_knees(pixels), RoiConfig(), size=64)
    assert [crop.name for crop in crops] == ["right", "left"]
    for crop in crops:
        assert crop.pixels.shape == (64, 64)
        assert crop.pixels.dtype == np.float32
        assert crop.side == pytest.approx(RoiConfig().roi_scale * crop.knee.joint_width)


def test_unsided_knees_are_numbered() -> None:
    pixels = _bilateral()
    detection = find_knees(pixels, RoiConfig(radiological_display=False))
    assert [crop.name for crop in crop_knees(pixels, detection, size=32)] == ["knee 1", "knee 2"]


def test_crop_centre_maps_back_to_the_joint_centre() -> None:
    pixels = _bilateral()
    for crop in crop_knees(pixels, find_knees(pixels), size=100):
        x, y = crop.to_source(50.0, 50.0)
        assert x == pytest.approx(crop.knee.centre_x + 0.5)
        assert y == pytest.approx(crop.knee.centre_y + 0.5)


def test_crop_pixels_are_the_source_pixels_of_the_box() -> None:
    ramp = np.tile(np.linspace(0.0, 1.0, 400, dtype=np.float32), (300, 1))
    knee = Knee(centre_x=199.5, centre_y=149.5, joint_width=100.0, confidence=1.0)
    config = RoiConfig(roi_scale=1.0)
    (crop,) = crop_knees(ramp, KneeDetection((knee,), 400, 300), config, size=100)
    assert crop_box(knee, config) == (150.0, 100.0, 100.0)
    np.testing.assert_allclose(crop.pixels[50], ramp[150, 150:250], atol=2e-3)


def test_paste_back_puts_a_crop_map_onto_the_source_and_nan_elsewhere() -> None:
    pixels = _bilateral()
    detection = find_knees(pixels)
    for config in (RoiConfig(), RoiConfig(mirror="left")):
        for crop in crop_knees(pixels, detection, config, size=96):
            restored = crop.paste_back(crop.pixels, pixels.shape)
            covered = ~np.isnan(restored)
            assert covered.any() and not covered.all()
            inner = covered & (np.abs(restored - pixels) < 0.08)
            assert inner.sum() > 0.9 * covered.sum()


def test_mirror_left_flips_only_left_knees() -> None:
    pixels = _bilateral()
    detection = find_knees(pixels)
    plain = crop_knees(pixels, detection, RoiConfig(), size=64)
    flipped = crop_knees(pixels, detection, RoiConfig(mirror="left"), size=64)
    assert [crop.mirrored for crop in flipped] == [False, True]
    np.testing.assert_array_equal(flipped[0].pixels, plain[0].pixels)
    np.testing.assert_array_equal(flipped[1].pixels, plain[1].pixels[:, ::-1])
    x, _ = flipped[1].to_source(0.0, 32.0)
    assert x == pytest.approx(flipped[1].left + flipped[1].side)


def test_no_knee_gives_no_crops() -> None:
    blank = np.zeros((100, 100), dtype=np.float32)
    assert crop_knees(blank, find_knees(blank)) == []


def test_settings_round_trip_through_a_plain_dict() -> None:
    config = RoiConfig(roi_scale=1.8, mirror="right", joint_width_mm=(40.0, 140.0))
    assert RoiConfig.from_dict(config.to_dict()) == config
    assert RoiConfig.from_dict({}) == RoiConfig()


@pytest.mark.parametrize(
    "values",
    [{"roi_scale": 0.5}, {"mirror": "up"}, {"min_confidence": 1.5}, {"colour": 1}],
)
def test_bad_settings_are_refused(values) -> None:
    with pytest.raises(BadConfigError):
        RoiConfig.from_dict(values)
