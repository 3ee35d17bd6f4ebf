"""Training: one LightningModule, one Trainer factory, and the fit routine for every mode.

The config is torch-free and imported at once; the fit routine (Lightning) only when used, so
``from osteoscan.training import TrainConfig`` stays fast.
"""

from __future__ import annotations

import importlib

from osteoscan.training.config import TrainConfig

_LAZY = {"FitResult": "osteoscan.training.fit", "fit_classifier": "osteoscan.training.fit"}

__all__ = ["FitResult", "TrainConfig", "fit_classifier"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'osteoscan.training' has no attribute {name!r}")
