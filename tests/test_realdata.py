"""The public 372-image knee set: every image reads, and a short training gives valid metrics."""

import math

import numpy as np
import pytest

from osteoscan import TrainConfig, evaluate, train
from osteoscan.data.decode import read_image_with_info
from osteoscan.data.pixels import prepare
from osteoscan.data.records import load_dataset

# A RuntimeWarning here means a statistic overflowed (float16) and its assertion proves nothing.
pytestmark = [pytest.mark.realdata, pytest.mark.filterwarnings("error::RuntimeWarning")]


def test_all_372_images_decode_to_the_contract(real_data, tmp_path):
    dataset = load_dataset(real_data)
    assert len(dataset.records) == 372 and dataset.problems == []
    assert dataset.class_counts() == {"normal": 186, "osteoporosis": 186}
    prepared = prepare([r.path for r in dataset.records], 64, cache_dir=tmp_path)
    assert prepared.problems == [] and prepared.pixels.shape == (372, 64, 64)
    assert prepared.pixels.min() >= 0.0 and prepared.pixels.max() <= 1.0
    # statistics in float32: summing 1.5 million float16 squares overflows to inf
    per_image = prepared.pixels.reshape(372, -1).std(axis=1, dtype=np.float32)
    assert per_image.min() > 0.05  # every frame holds a knee, none is blank
    assert 0.1 < float(prepared.pixels.mean(dtype=np.float32)) < 0.9


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
    matrix = np.array(result.confusion_matrix)  # rows: true class, columns: predicted
    n_osteoporosis = sum(r.label == "osteoporosis" for r in subset)
    assert matrix.sum(axis=1).tolist() == [96 - n_osteoporosis, n_osteoporosis]
    value = {name: metric.value for name, metric in result.metrics.items()}
    assert value["accuracy"] == pytest.approx(np.trace(matrix) / 96)
    assert value["sensitivity"] == pytest.approx(matrix[1, 1] / n_osteoporosis)
    assert value["specificity"] == pytest.approx(matrix[0, 0] / (96 - n_osteoporosis))
    assert math.isfinite(value["roc_auc"])  # both classes are present: the AUC is defined
    for name, metric in result.metrics.items():
        if not math.isnan(metric.value):  # precision is undefined if nothing is called positive
            assert metric.ci95[0] <= metric.value <= metric.ci95[1], name
