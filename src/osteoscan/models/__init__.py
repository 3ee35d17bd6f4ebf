"""Model registry, ImageNet weight loading, and network construction per mode.

The registry (names, modes, specs, where weights come from) imports no torch; the builders and
weight loading below are imported on first use, so listing models answers at once.
"""

from __future__ import annotations

import importlib

from osteoscan.models.registry import (
    MODELS,
    MODES,
    TIMM_PREFIX,
    ModelInfo,
    ModelSpec,
    get_spec,
    model_infos,
    models_table,
    register,
)
from osteoscan.models.sources import PackageWeights, TimmWeights, TorchvisionWeights

_LAZY = {
    "ClassifierNet": "osteoscan.models.build",
    "build_for_inference": "osteoscan.models.build",
    "build_model": "osteoscan.models.build",
    "gradcam_layer": "osteoscan.models.build",
    "WeightsSource": "osteoscan.models.weights",
    "load_pretrained": "osteoscan.models.weights",
}

__all__ = [
    "MODELS",
    "MODES",
    "TIMM_PREFIX",
    "ModelInfo",
    "ModelSpec",
    "PackageWeights",
    "TimmWeights",
    "TorchvisionWeights",
    "get_spec",
    "model_infos",
    "models_table",
    "register",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'osteoscan.models' has no attribute {name!r}")
