"""Model registry, ImageNet weight loading, and network construction per mode."""

from osteoscan.models.build import ClassifierNet, build_for_inference, build_model
from osteoscan.models.registry import MODELS, MODES, ModelSpec, get_spec, register
from osteoscan.models.weights import WeightsSource, resolve_weights

__all__ = [
    "MODELS",
    "MODES",
    "ClassifierNet",
    "ModelSpec",
    "WeightsSource",
    "build_for_inference",
    "build_model",
    "get_spec",
    "register",
    "resolve_weights",
]
