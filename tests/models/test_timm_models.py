"""Any timm architecture as ``timm:NAME``, its weights read only from the local timm cache."""

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from osteoscan.errors import BadConfigError, BadWeightsError
from osteoscan.files import sha256_file
from osteoscan.models import WeightsSource, build_model, get_spec, models_table
from osteoscan.models.sources import cached_timm_models


def _put_in_hub_cache(cache: Path, repo: str, state: dict) -> Path:
    """Lay out a file as huggingface_hub caches it: refs/main -> snapshots/<commit>/file."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    path = folder / "snapshots" / "0123abcd" / "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def resnet18_state() -> dict:
    torch.manual_seed(7)
    return timm.create_model("resnet18").state_dict()


def test_spec_comes_from_timms_pretrained_config():
    spec = get_spec("timm:resnet18")
    cfg = timm.models.get_pretrained_cfg("resnet18")
    assert spec.weights.hf_hub_id == cfg.hf_hub_id == "timm/resnet18.a1_in1k"
    assert (spec.mean, spec.std, spec.image_size) == (cfg.mean, cfg.std, 224)
    assert (spec.head, spec.gradcam_layer, spec.modes) == (
        "fc",
        "layer4",
        ("finetune", "frozen", "scratch"),
    )
    vit = get_spec("timm:vit_tiny_patch16_224")
    assert vit.mean == (0.5, 0.5, 0.5) and vit.min_image_size == vit.image_size == 224


def test_any_timm_architecture_trains_from_scratch_with_its_gradcam_layer():
    net, source = build_model("timm:mobilenetv3_small_050", "scratch", 3)
    spec = get_spec("timm:mobilenetv3_small_050")
    maps = []
    net.backbone.get_submodule(spec.gradcam_layer).register_forward_hook(
        lambda m, i, o: maps.append(o)
    )
    size = spec.min_image_size
    assert net.eval()(torch.rand(2, 3, size, size)).shape == (2, 3) and source is None
    assert maps[0].ndim == 4


def test_unknown_timm_name_suggests_close_ones():
    with pytest.raises(
        BadConfigError, match="no architecture 'resnet181'.*did you mean timm:resnet18"
    ):
        get_spec("timm:resnet181")
    with pytest.raises(BadConfigError, match="hub ids are not read"):
        get_spec("timm:hf-hub:timm/resnet18.a1_in1k")


def test_offline_without_cached_weights_is_a_clear_error_never_a_random_init(hf_hub_cache):
    with pytest.raises(BadWeightsError) as info:
        build_model("timm:resnet18", "finetune", 2)
    message = str(info.value)
    assert str(hf_hub_cache / "models--timm--resnet18.a1_in1k") in message
    assert (
        "never downloads" in message and "--weights FILE" in message and "--mode scratch" in message
    )


def test_weights_in_the_timm_cache_are_used_offline(hf_hub_cache, resnet18_state):
    path = _put_in_hub_cache(hf_hub_cache, "timm/resnet18.a1_in1k", resnet18_state)
    net, source = build_model("timm:resnet18", "frozen", 2)
    assert source == WeightsSource(str(path), sha256_file(path), "timm cache")
    own = net.backbone.state_dict()
    assert all(torch.equal(own[k], v) for k, v in resnet18_state.items() if not k.startswith("fc."))
    assert cached_timm_models() == ["resnet18.a1_in1k"]
    assert "present now: timm:resnet18.a1_in1k" in models_table()


def test_weights_file_for_a_timm_architecture(tmp_path, resnet18_state):
    path = tmp_path / "my-resnet18.pth"
    torch.save(resnet18_state, path)
    net, source = build_model("timm:resnet18", "finetune", 2, path)
    assert source == WeightsSource(str(path), sha256_file(path), "file")
    assert torch.equal(net.backbone.conv1.weight, resnet18_state["conv1.weight"])
    with pytest.raises(
        BadWeightsError, match="not timm convnext_atto weights for timm:convnext_atto"
    ):
        build_model("timm:convnext_atto", "finetune", 2, path)
