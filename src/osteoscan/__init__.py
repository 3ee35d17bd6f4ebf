"""osteoscan: screen knee X-rays for osteoporosis with transfer-learned CNNs.

A research screening aid, not a diagnostic device. Everything the CLI does is one import away::

    from osteoscan import make_synthetic_dataset, run_audit, train, evaluate, TrainConfig, Task
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("osteoscan")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

_EXPORTS = {
    "train": "osteoscan.pipeline",
    "evaluate": "osteoscan.pipeline",
    "prepare_dataset": "osteoscan.pipeline",
    "prepare_grouped": "osteoscan.pipeline",
    "fit_split": "osteoscan.pipeline",
    "choose_threshold": "osteoscan.pipeline",
    "write_bundle": "osteoscan.pipeline",
    "BundleMetadata": "osteoscan.metadata",
    "TrainConfig": "osteoscan.training.config",
    "RoiConfig": "osteoscan.roi.config",
    "Task": "osteoscan.data.labels",
    "load_dataset": "osteoscan.data.records",
    "read_image": "osteoscan.data.decode",
    "make_synthetic_dataset": "osteoscan.data.synth",
    "run_audit": "osteoscan.audit",
    "find_duplicate_groups": "osteoscan.audit",
    "load_bundle": "osteoscan.bundle",
    "build_model": "osteoscan.models",
    "MODELS": "osteoscan.models",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    """Import lazily so ``import osteoscan`` (and ``osteoscan --help``) stays fast."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'osteoscan' has no attribute {name!r}")
