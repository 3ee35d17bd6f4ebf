"""Shared by the knee-ROI wiring tests: mixed-view phantoms and a cnn3 bundle trained on crops."""

import json

import numpy as np
import pytest
from PIL import Image

from osteoscan import TrainConfig, train
from osteoscan.data.synth import JOINTS_FILE, make_synthetic_dataset
from osteoscan.roi import RoiConfig


@pytest.fixture(scope="session")
def roi_train_config() -> TrainConfig:
    """Fast cnn3 training on knee crops (32 px, 1 epoch), with a non-default ROI scale."""
    fast = dict(model="cnn3", mode="scratch", image_size=32, epochs=1, batch_size=16)
    return TrainConfig(roi=RoiConfig(roi_scale=1.8), progress=False, **fast)


@pytest.fixture(scope="session")
def mixed_views(tmp_path_factory):
    """Single and bilateral phantoms (joints.json says which), plus one blank image."""
    out = tmp_path_factory.mktemp("views")
    make_synthetic_dataset(out, n=36, seed=2, image_size=128, views={"single": 1, "bilateral": 1})
    views = json.loads((out / JOINTS_FILE).read_text())["images"]
    blank = out / "normal" / "blank.png"
    Image.fromarray(np.zeros((128, 128), np.uint8)).save(blank)
    with open(out / "manifest.csv", "a") as manifest:
        manifest.write("normal/blank.png,blank-patient,0.50,normal\n")
    return out, views


@pytest.fixture(scope="session")
def roi_bundle(mixed_views, roi_train_config, tmp_path_factory):
    """(bundle folder, TrainOutcome) of :func:`roi_train_config` on :func:`mixed_views`."""
    data, _ = mixed_views
    out = tmp_path_factory.mktemp("bundles") / "roi"
    return out, train(data, out, roi_train_config)
