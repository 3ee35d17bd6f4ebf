"""The audit's shortcut classifier on the study's own folds: a row for what non-image features
(file size, format, borders...) predict without looking at bone.

Uses the audit's features and classifier (:mod:`osteoscan.audit.shortcut`), fitted on each
training part and scored on its test fold, so it is comparable row for row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from osteoscan.audit.fingerprint import fingerprint_files
from osteoscan.audit.shortcut import out_of_fold_proba, shortcut_features
from osteoscan.study.folds import Fold


def shortcut_probabilities(
    paths: Sequence[Path],
    targets: np.ndarray,
    folds: Sequence[Fold],
    cache_dir: Path | None,
    seed: int,
) -> dict[int, np.ndarray]:
    """Out-of-fold P(positive class) for every record, per repeat (1-based)."""
    _, features = shortcut_features(fingerprint_files(list(paths), cache_dir))
    out: dict[int, np.ndarray] = {}
    for repeat in sorted({fold.repeat for fold in folds}):
        parts = [(f.train_index, f.test_index) for f in folds if f.repeat == repeat]
        out[repeat] = out_of_fold_proba(features, targets, parts, seed)[:, 1]
    return out
