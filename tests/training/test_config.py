"""TrainConfig refuses every value no run can use, in Python exactly as at the command line."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

from osteoscan.data.augment import AugmentConfig
from osteoscan.errors import BadConfigError
from osteoscan.models.registry import MODELS, MODES
from osteoscan.training.config import ACCELERATORS, DEFAULT_LR, MAX_SEED, STRATEGIES, TrainConfig

# (field values, fragment the message must hold): each refused when the config is made
REFUSED = [
    ({"epochs": 0}, "--epochs"),
    ({"epochs": -1}, "--epochs"),
    ({"image_size": 0}, "--image-size"),
    ({"image_size": -224}, "--image-size"),
    ({"batch_size": 0}, "--batch-size"),
    ({"batch_size": -16}, "--batch-size"),
    ({"lr": math.nan}, "--lr"),
    ({"lr": math.inf}, "--lr"),
    ({"lr": -1e-4}, "--lr"),
    ({"lr": 0.0}, "--lr"),
    ({"weight_decay": -1e-4}, "--weight-decay"),
    ({"weight_decay": math.nan}, "--weight-decay"),
    ({"workers": -1}, "--workers"),
    ({"devices": 0}, "--devices"),
    ({"devices": -1}, "--devices"),
    ({"devices": "two"}, "--devices"),
    ({"num_nodes": 0}, "--num-nodes"),
    ({"val_fraction": 0.0}, "--val-fraction"),
    ({"val_fraction": 1.0}, "--val-fraction"),
    ({"val_fraction": 1.5}, "--val-fraction"),
    ({"patience": -1}, "--patience"),
    ({"frozen_views": 0}, "--frozen-views"),
    ({"mode": "frozen", "frozen_views": -2}, "--frozen-views"),
    ({"mode": "finetune", "frozen_views": 3}, "only frozen mode"),
    ({"seed": -1}, "--seed"),
    ({"seed": MAX_SEED + 1}, "--seed"),
    ({"strategy": "ddp2"}, "--strategy"),
    ({"accelerator": "quantum"}, "--accelerator"),
    ({"precision": "8"}, "--precision"),
    ({"mode": "distill"}, "--mode"),
    ({"threshold": 1.5}, "--threshold"),
    ({"threshold": 0.0}, "--threshold"),
    ({"threshold": "otsu"}, "--threshold"),
    ({"mode": "scratch", "weights_file": Path("w.pth")}, "--weights"),
    ({"weights_sha256": "ab" * 32}, "--weights-sha256"),
    ({"weights_file": Path("w.pth"), "weights_sha256": "not-hex"}, "64 hex digits"),
]


@pytest.mark.parametrize(("values", "fragment"), REFUSED, ids=lambda v: str(v))
def test_refused_when_made(values, fragment):
    with pytest.raises(BadConfigError) as refused:
        TrainConfig(**values)
    message = str(refused.value)
    assert fragment in message
    assert f"{list(values)[-1]}=" in message  # names the field for Python users too


def test_defaults_and_edges_are_accepted():
    TrainConfig().check_runtime()
    TrainConfig(seed=MAX_SEED, val_fraction=0.5, patience=0, workers=0, devices=2)
    TrainConfig(mode="frozen", frozen_views=4, lr=1e-2, threshold="youden")
    TrainConfig(weights_file=Path("w.pth"), weights_sha256="AB" * 32)


def test_one_default_learning_rate_per_registry_mode():
    assert tuple(DEFAULT_LR) == MODES


def test_strategies_and_accelerators_are_lightnings_names():
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    registered = set(StrategyRegistry.available_strategies())
    assert set(STRATEGIES) - {"auto"} <= registered
    left_out = registered - set(STRATEGIES)
    assert all(
        name.startswith(("deepspeed", "xla", "single_xla", "single_tpu")) for name in left_out
    )
    assert set(ACCELERATORS) - {"auto", "gpu"} <= set(AcceleratorRegistry.available_accelerators())


@pytest.mark.parametrize(
    "model", [name for name, spec in MODELS.items() if spec.min_image_size > 1]
)
def test_image_below_the_architecture_minimum_is_refused(model):
    """Models that run on a single pixel are covered by the image_size >= 1 check."""
    spec = MODELS[model]
    mode = spec.modes[0]
    TrainConfig(model=model, mode=mode, image_size=spec.min_image_size).check_runtime()
    with pytest.raises(BadConfigError, match=f"at least {spec.min_image_size} pixels"):
        TrainConfig(model=model, mode=mode, image_size=spec.min_image_size - 1).check_runtime()


@pytest.mark.parametrize("model", ["cnn3", "vgg16"])  # both fail one pixel below the minimum
def test_the_minimum_image_size_is_one_the_network_takes(model):
    import torch

    spec = MODELS[model]
    net = spec.builder().eval()
    with torch.no_grad():
        logits = net(torch.rand(2, spec.in_chans, spec.min_image_size, spec.min_image_size))
    assert torch.isfinite(logits).all()


def test_model_and_mode_must_fit_together():
    with pytest.raises(BadConfigError, match="cnn3 can be trained in: scratch"):
        TrainConfig(model="cnn3", mode="finetune").check_runtime()
    with pytest.raises(BadConfigError, match="resnet51"):
        TrainConfig(model="resnet51").check_runtime()


def test_gpu_requested_on_a_machine_without_one(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for accelerator in ("gpu", "cuda"):
        with pytest.raises(BadConfigError, match="--accelerator cpu or auto"):
            TrainConfig(accelerator=accelerator).check_runtime()
    TrainConfig(accelerator="cpu").check_runtime()


def test_more_gpus_than_the_machine_has(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    TrainConfig(accelerator="gpu", devices=1).check_runtime()
    with pytest.raises(BadConfigError, match="has 1 gpu device"):
        TrainConfig(accelerator="gpu", devices=2).check_runtime()


@pytest.mark.parametrize(
    "values",
    [
        {"rotation_degrees": -1.0},
        {"brightness": math.nan},
        {"zoom_scale": (0.0, 1.0)},
        {"zoom_scale": (0.9, 0.8)},
        {"zoom_scale": (0.8, 1.2)},
    ],
)
def test_augmentation_refuses_impossible_ranges(values):
    with pytest.raises(BadConfigError, match="augmentation"):
        AugmentConfig(**values)


def test_the_config_imports_no_torch():
    code = (
        "import sys; from osteoscan.training import TrainConfig; TrainConfig(); "
        "print(sorted({'torch', 'torchvision', 'lightning'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
