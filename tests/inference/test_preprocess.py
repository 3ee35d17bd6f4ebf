"""The torch-free preprocessing path: letterbox geometry, exact undo, normalisation."""

import numpy as np
import pytest

from osteoscan.data.pixels import letterbox
from osteoscan.inference.preprocess import Letterbox, Preprocessor
from osteoscan.metadata import InputSpec
from osteoscan.stats import softmax


@pytest.mark.parametrize(("height", "width", "size"), [(100, 40, 48), (33, 90, 64), (50, 50, 32)])
def test_geometry_is_where_the_letterbox_put_the_image(height, width, size):
    boxed = letterbox(np.ones((height, width), np.float32), size)
    rows, cols = np.nonzero(boxed > 0.5)
    top, left, new_h, new_w = Letterbox(height, width, size).box
    assert (rows.min(), cols.min()) == (top, left)
    assert (rows.max() + 1, cols.max() + 1) == (top + new_h, left + new_w)


def test_undo_maps_a_feature_back_to_its_original_place():
    height, width, size = 120, 60, 48
    image = np.zeros((height, width), np.float32)
    image[80:100, 10:30] = 1.0
    geometry = Letterbox(height, width, size)
    back = geometry.to_original(letterbox(image, size))
    assert back.shape == (height, width)
    rows, cols = np.nonzero(back > 0.5)
    assert abs(rows.mean() - 89.5) < 1.5 and abs(cols.mean() - 19.5) < 1.5


def test_normalise_replicates_channels_and_applies_mean_std():
    spec = InputSpec(8, 3, (0.5, 0.4, 0.3), (0.5, 0.25, 0.1), contract_version=1)
    batch = Preprocessor(spec).normalise([np.full((8, 8), 0.5, np.float32)])
    assert batch.shape == (1, 3, 8, 8) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 0, 0], [0.0, 0.4, 2.0], rtol=1e-6)


def test_softmax_with_temperature_is_stable():
    probs = softmax(np.array([[1000.0, 0.0], [2.0, 0.0]]), temperature=2.0)
    np.testing.assert_allclose(probs[0], [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(probs[1, 0], 1 / (1 + np.exp(-1.0)))


@pytest.mark.parametrize("in_chans", [1, 3])
def test_normalise_gives_exactly_the_broadcast_formula(in_chans):
    mean, std = (0.485, 0.456, 0.406)[:in_chans], (0.229, 0.224, 0.225)[:in_chans]
    squares = np.random.default_rng(0).random((5, 16, 16), dtype=np.float32)
    batch = Preprocessor(InputSpec(16, in_chans, mean, std, 1)).normalise(list(squares))
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    expected = (np.broadcast_to(squares[:, None], batch.shape) - m) / s
    assert batch.flags.c_contiguous and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, expected)
