"""Data audit: duplicates, label conflicts and shortcuts, found before anyone trusts a number.

    from osteoscan.audit import run_audit, summary_text
    result = run_audit(Path("data/"), out_dir=Path("audit/"))  # writes audit.json + audit.html
    print(summary_text(result))

The audit lives in the data layer: it reads files through :mod:`osteoscan.data` and never
imports a model. Splits use :func:`find_duplicate_groups` to keep copies in one fold.
Names are imported lazily, so the worker processes that fingerprint files or verify pairs
import only what they use (scikit-learn alone takes seconds to import).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "run_audit": "osteoscan.audit.core",
    "AuditResult": "osteoscan.audit.result",
    "summary_text": "osteoscan.audit.summary",
    "write_report": "osteoscan.audit.report",
    "DuplicateGroup": "osteoscan.audit.duplicates",
    "find_duplicate_groups": "osteoscan.audit.duplicates",
    "Conflict": "osteoscan.audit.conflicts",
    "ShortcutResult": "osteoscan.audit.shortcut",
    "NEAR_THRESHOLD": "osteoscan.audit.verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
