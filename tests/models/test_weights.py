"""Weight loading with files the tests make (same format as torchvision's published ones)."""

from pathlib import Path

import pytest
import torch
import torchvision

from osteoscan.errors import BadWeightsError
from osteoscan.files import sha256_file
from osteoscan.models import WeightsSource, build_model, get_spec

RESNET18 = get_spec("resnet18").weights


@pytest.fixture(scope="module")
def resnet18_state(tmp_path_factory) -> tuple[Path, dict]:
    torch.manual_seed(123)
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path_factory.mktemp("weights") / "my-resnet18.pth"
    torch.save(state, path)
    return path, state


def _backbone_matches(net, state) -> bool:
    own = net.backbone.state_dict()
    return all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("fc."))


def test_offline_without_weights_names_the_expected_file_and_the_fixes():
    expected = RESNET18.cache_path()
    url = torchvision.models.get_weight(RESNET18.enum).url
    with pytest.raises(BadWeightsError) as info:
        build_model("resnet18", "finetune", 2)
    message = str(info.value)
    assert str(expected) in message and url in message
    assert "--weights" in message and "--mode scratch" in message


def test_weights_in_the_torch_home_cache_are_used(resnet18_state):
    path, state = resnet18_state
    expected = RESNET18.cache_path()
    expected.parent.mkdir(parents=True, exist_ok=True)
    expected.write_bytes(path.read_bytes())
    try:
        net, source = build_model("resnet18", "finetune", 2)
    finally:
        expected.unlink()
    assert _backbone_matches(net, state)
    assert source == WeightsSource(str(expected), sha256_file(path), "torchvision cache")


def test_explicit_weights_file_with_matching_sha256(resnet18_state):
    path, state = resnet18_state
    net, source = build_model("resnet18", "frozen", 3, path, sha256_file(path))
    assert source == WeightsSource(str(path), sha256_file(path), "file")
    assert _backbone_matches(net, state)
    assert net.head.out_features == 3
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert all(p.requires_grad for p in net.head.parameters())
    net.train()
    assert not net.backbone.training, "a frozen backbone keeps its BatchNorm statistics"


def test_wrong_sha256_is_refused(resnet18_state):
    path, _ = resnet18_state
    with pytest.raises(BadWeightsError, match="sha256"):
        build_model("resnet18", "finetune", 2, path, "0" * 64)


def test_weights_of_another_architecture_are_refused(resnet18_state):
    path, _ = resnet18_state
    with pytest.raises(BadWeightsError, match="not torchvision ResNet50_Weights.*resnet50"):
        build_model("resnet50", "finetune", 2, path)


def test_file_with_torchvision_name_but_wrong_hash_is_refused(tmp_path, resnet18_state):
    path, _ = resnet18_state
    fake = tmp_path / "resnet18-f37072fd.pth"
    fake.write_bytes(path.read_bytes())
    with pytest.raises(BadWeightsError, match="f37072fd"):
        build_model("resnet18", "finetune", 2, fake)


def test_corrupt_weights_file(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(BadWeightsError, match="broken.pth.*state dict"):
        build_model("resnet18", "finetune", 2, bad)


class _NotATensor:
    pass


def test_pickled_objects_are_never_unpickled(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _NotATensor()}, evil)
    with pytest.raises(BadWeightsError, match="evil.pth"):
        build_model("resnet18", "finetune", 2, evil)
