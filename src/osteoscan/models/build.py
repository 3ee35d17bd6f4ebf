"""Turn a registered architecture and a mode into a network with a fresh classification head.

Modes (the study's terms in brackets):

* ``finetune`` — ImageNet initialisation, every layer trained ["with fine-tuning"];
* ``frozen``   — ImageNet backbone frozen, only the new head trained ["without fine-tuning"];
* ``scratch``  — random initialisation, every layer trained.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from osteoscan.errors import BadConfigError
from osteoscan.models.registry import ModelSpec, get_spec
from osteoscan.models.weights import WeightsSource, load_pretrained


class ClassifierNet(nn.Module):
    """``head(backbone(x))``. In frozen mode the backbone stays in eval mode and gets no gradients."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, frozen: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.frozen = frozen
        if frozen:
            backbone.requires_grad_(False)
            backbone.eval()

    def train(self, mode: bool = True) -> ClassifierNet:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # keep BatchNorm statistics and dropout as pretrained
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _get_submodule_parent(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    parent_path, _, leaf = dotted.rpartition(".")
    return (model.get_submodule(parent_path) if parent_path else model), leaf


def build_model(
    name: str,
    mode: str,
    num_classes: int,
    weights_file: Path | None = None,
    weights_sha256: str | None = None,
) -> tuple[ClassifierNet, WeightsSource | None]:
    """Build ``name`` in ``mode`` with a ``num_classes`` head; returns the net and its weights' source."""
    spec = get_spec(name)
    if mode not in spec.modes:
        raise BadConfigError(
            f"model {name!r} cannot be used in mode {mode!r}: it has "
            f"{'no pretrained weights' if not spec.weights else 'modes ' + ', '.join(spec.modes)}; "
            f"use --mode {' or --mode '.join(spec.modes)}"
        )
    if mode == "scratch" and (weights_file is not None or weights_sha256 is not None):
        raise BadConfigError(
            "--weights and --weights-sha256 give pretrained weights, which --mode scratch does "
            "not use; drop them, or use --mode finetune or --mode frozen"
        )
    net = spec.builder()
    source = None
    if mode in ("finetune", "frozen"):
        source = load_pretrained(spec, net, weights_file, weights_sha256)
    return _attach_head(net, spec, num_classes, frozen=mode == "frozen"), source


def _attach_head(net: nn.Module, spec: ModelSpec, num_classes: int, frozen: bool) -> ClassifierNet:
    parent, leaf = _get_submodule_parent(net, spec.head)
    old_head = getattr(parent, leaf)
    if not isinstance(old_head, nn.Linear):
        raise BadConfigError(f"model {spec.name}: head {spec.head!r} is not a linear layer")
    setattr(parent, leaf, nn.Identity())
    return ClassifierNet(net, nn.Linear(old_head.in_features, num_classes), frozen)


def build_for_inference(name: str, mode: str, num_classes: int) -> ClassifierNet:
    """The same structure as :func:`build_model`, randomly initialised, to load a bundle into."""
    spec = get_spec(name)
    return _attach_head(spec.builder(), spec, num_classes, frozen=mode == "frozen")


def gradcam_layer(net: ClassifierNet, name: str) -> nn.Module:
    """The module of ``net`` (built as model ``name``) whose feature map Grad-CAM explains."""
    return net.backbone.get_submodule(get_spec(name).gradcam_layer)
