import json

import numpy as np
import pytest

from osteoscan.bundle import METADATA_FILE, Bundle, load_bundle, save_bundle, staging_dir_for
from osteoscan.errors import BadBundleError
from osteoscan.models import build_model


def _metadata(image_size=48):
    return {
        "bundle_format": 1,
        "model": "cnn3",
        "mode": "scratch",
        "task": {"name": "binary", "osteopenia": "exclude"},
        "class_names": ["normal", "osteoporosis"],
        "decision_threshold": 0.5,
        "input": {"image_size": image_size, "mean": [0.5], "std": [0.25]},
    }


def _bundle():
    net, _ = build_model("cnn3", "scratch", 2)
    return Bundle(net.eval(), _metadata())


def test_round_trip_gives_identical_predictions(tmp_path):
    bundle = _bundle()
    pixels = np.random.default_rng(0).random((5, 48, 48)).astype(np.float32)
    save_bundle(bundle, tmp_path / "b", staging_dir_for(tmp_path / "b"))
    loaded = load_bundle(tmp_path / "b")
    np.testing.assert_allclose(
        loaded.predict_proba(pixels), bundle.predict_proba(pixels), atol=1e-6
    )
    assert loaded.class_names == ("normal", "osteoporosis") and loaded.image_size == 48
    assert np.allclose(loaded.predict_proba(pixels).sum(1), 1.0)


def test_existing_bundle_is_replaced_whole_and_no_staging_left(tmp_path):
    out = tmp_path / "b"
    save_bundle(_bundle(), out, staging_dir_for(out))
    second = _bundle()
    second.metadata["decision_threshold"] = 0.3
    staging = staging_dir_for(out)
    (staging / "logs").mkdir(parents=True)
    save_bundle(second, out, staging)
    assert json.loads((out / METADATA_FILE).read_text())["decision_threshold"] == 0.3
    assert (out / "logs").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_missing_or_foreign_bundles_give_clear_errors(tmp_path):
    with pytest.raises(BadBundleError, match="not a model bundle"):
        load_bundle(tmp_path)
    out = tmp_path / "b"
    save_bundle(_bundle(), out, staging_dir_for(out))
    meta = json.loads((out / METADATA_FILE).read_text())
    meta["bundle_format"] = 99
    (out / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(BadBundleError, match="format 99"):
        load_bundle(out)
