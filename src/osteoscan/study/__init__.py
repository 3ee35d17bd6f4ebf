"""The study: the published six-model comparison on leakage-free folds, with paired statistics,
external validation and a self-contained report.

    from osteoscan.study import RunOptions, load_study_config, run_study, write_report

Heavy modules (torch, Lightning) load on first use, so importing this package stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "StudyConfig": "osteoscan.study.config",
    "load_study_config": "osteoscan.study.config",
    "default_config_path": "osteoscan.study.config",
    "RunOptions": "osteoscan.study.runner",
    "run_study": "osteoscan.study.runner",
    "plan_study": "osteoscan.study.runner",
    "write_report": "osteoscan.study.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'osteoscan.study' has no attribute {name!r}")
