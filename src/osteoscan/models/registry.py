"""Named architectures. Everything about a model's weights and input lives in one ModelSpec.

Adding a model is adding one decorated builder below (compare timm's ``register_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torchvision.models as tvm
from torch import nn

from osteoscan.errors import BadConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = ("finetune", "frozen", "scratch")


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture.

    ``head`` is the dotted path of the final classifier layer, replaced by a new linear layer.
    ``weights`` names torchvision's ImageNet weights enum member (None: no pretrained weights).
    """

    name: str
    builder: Callable[[], nn.Module]
    head: str
    weights: str | None
    in_chans: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    description: str = ""
    min_image_size: int = 32

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES if self.weights else ("scratch",)


MODELS: dict[str, ModelSpec] = {}


def register(name: str, *, head: str, weights: str | None, **fields) -> Callable:
    """Decorator: register ``builder`` (a function returning an untrained nn.Module) as ``name``."""

    def wrap(builder: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        doc = (builder.__doc__ or "").strip()
        MODELS[name] = ModelSpec(name, builder, head, weights, description=doc, **fields)
        return builder

    return wrap


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise BadConfigError(
            f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}"
        ) from None


class CNN3(nn.Module):
    """Three conv blocks and a linear layer: the study's small baseline, trained from scratch."""

    def __init__(self, in_chans: int = 1, num_classes: int = 2, width: int = 32) -> None:
        super().__init__()
        blocks, channels = [], in_chans
        for out in (width, width * 2, width * 4):
            blocks += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


@register("cnn3", head="fc", weights=None, in_chans=1, mean=(0.5,), std=(0.25,), min_image_size=8)
def _cnn3() -> nn.Module:
    """The study's 3-layer CNN (scratch only)."""
    return CNN3()


@register("resnet18", head="fc", weights="ResNet18_Weights.IMAGENET1K_V1")
def _resnet18() -> nn.Module:
    """ResNet-18 (He et al. 2016)."""
    return tvm.resnet18(weights=None)


@register("resnet50", head="fc", weights="ResNet50_Weights.IMAGENET1K_V1")
def _resnet50() -> nn.Module:
    """ResNet-50 (He et al. 2016)."""
    return tvm.resnet50(weights=None)


@register("vgg16", head="classifier.6", weights="VGG16_Weights.IMAGENET1K_V1")
def _vgg16() -> nn.Module:
    """VGG-16 (Simonyan & Zisserman 2015); frozen mode trains only the last linear layer."""
    return tvm.vgg16(weights=None)


@register("densenet121", head="classifier", weights="DenseNet121_Weights.IMAGENET1K_V1")
def _densenet121() -> nn.Module:
    """DenseNet-121 (Huang et al. 2017): not in the study, a common stronger baseline."""
    return tvm.densenet121(weights=None)


@register("efficientnet_b0", head="classifier.1", weights="EfficientNet_B0_Weights.IMAGENET1K_V1")
def _efficientnet_b0() -> nn.Module:
    """EfficientNet-B0 (Tan & Le 2019): not in the study, cheap and strong on CPU."""
    return tvm.efficientnet_b0(weights=None)
