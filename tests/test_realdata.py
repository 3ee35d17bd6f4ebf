"""The public 372-image knee set: every image reads, and a short training gives valid metrics."""

import numpy as np
import pytest

from osteoscan import TrainConfig, evaluate, train
from osteoscan.data.decode import read_image_with_info
from osteoscan.data.pixels import prepare
from osteoscan.data.records import load_dataset

pytestmark = pytest.mark.realdata


def test_all_372_images_decode_to_the_contract(real_data, tmp_path):
    dataset = load_dataset(real_data)
    assert len(dataset.records) == 372 and dataset.problems == []
    assert dataset.class_counts() == {"normal": 186, "osteoporosis": 186}
    prepared = prepare([r.path for r in dataset.records], 64, cache_dir=tmp_path)
    assert prepared.problems == [] and prepared.pixels.shape == (372, 64, 64)
    assert prepared.pixels.min() >= 0.0 and prepared.pixels.max() <= 1.0
    assert float(prepared.pixels.std()) > 0.05  # real content, not blank frames


def test_fullres_samples_decode_at_full_size(fullres_samples):
    for path in sorted(fullres_samples.iterdir()):
        pixels, info = read_image_with_info(path)
        assert pixels.shape == (info.height, info.width) and max(pixels.shape) > 2000
        assert pixels.dtype == np.float32 and 0.0 <= pixels.min() < pixels.max() <= 1.0


@pytest.mark.slow
def test_short_training_on_a_real_subset_gives_valid_metrics(real_data, tmp_path):
    records = load_dataset(real_data).records
    rng = np.random.default_rng(0)
    subset = [records[i] for i in sorted(rng.choice(len(records), 96, replace=False))]
    manifest = tmp_path / "subset.csv"
    manifest.write_text("path,label\n" + "".join(f"{r.path},{r.label}\n" for r in subset))
    outcome = train(
        manifest,
        tmp_path / "bundle",
        TrainConfig(
            model="cnn3", mode="scratch", image_size=64, epochs=2, batch_size=16, progress=False
        ),
    )
    assert outcome.skipped == []
    result = evaluate(tmp_path / "bundle", manifest, n_boot=200).result
    assert result.n == 96  # evaluation scores every image; only training drops conflicts
    for name, metric in result.metrics.items():
        if metric.value == metric.value:  # not NaN
            assert 0.0 <= metric.value <= 1.0, name
            assert metric.ci95[0] <= metric.value <= metric.ci95[1], name
