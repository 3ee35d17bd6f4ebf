"""The torch-free preprocessing path: letterbox geometry, exact undo, normalisation."""

import numpy as np
import pytest
from PIL import Image

from osteoscan.data.decode import read_image
from osteoscan.data.pixels import letterbox, prepare
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


def test_a_plain_load_of_an_8bit_image_makes_its_full_size_array_only_when_asked(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "knee.png"
    Image.fromarray(rng.integers(0, 256, (120, 70), dtype=np.uint8), mode="L").save(path)
    image = Preprocessor(InputSpec(48, 3, (0.5,) * 3, (0.25,) * 3, 1)).load(path)
    np.testing.assert_array_equal(image.square, letterbox(read_image(path), 48))
    assert image.decoded._array is None  # the prediction did not need it
    np.testing.assert_array_equal(image.original, read_image(path))  # a heat-map does
    assert image.geometry == Letterbox(120, 70, 48)


@pytest.mark.realdata
def test_real_radiographs_prepare_as_training_saw_them(real_data, fullres_samples):
    paths = sorted((real_data / "normal").iterdir())[:6] + sorted(fullres_samples.iterdir())
    pre = Preprocessor(InputSpec(224, 3, (0.5,) * 3, (0.25,) * 3, 1))
    trained = prepare(paths, 224, cache_dir=None, workers=1)
    assert trained.indices == list(range(len(paths)))
    for path, cached in zip(paths, trained.pixels, strict=True):
        square = pre.load(path).square
        np.testing.assert_array_equal(square, letterbox(read_image(path), 224))
        np.testing.assert_array_equal(square.astype(np.float16), cached)


def test_normalise_into_a_batch_row_gives_the_same_values_and_checks_the_shape():
    pre = Preprocessor(InputSpec(16, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1))
    squares = np.random.default_rng(3).random((4, 16, 16), dtype=np.float32)
    batch = np.full((4, 3, 16, 16), np.nan, np.float32)
    for row in range(4):
        pre.normalise(squares[row : row + 1], out=batch[row : row + 1])
    np.testing.assert_array_equal(batch, pre.normalise(list(squares)))
    with pytest.raises(ValueError, match="needs float32"):
        pre.normalise(squares[:1], out=np.empty((1, 1, 16, 16), np.float32))
