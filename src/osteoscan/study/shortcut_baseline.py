"""The audit's shortcut classifier on the study's own folds: a row for what non-image features
(file size, format, borders...) predict without looking at bone.

Uses the audit's feature extraction (:mod:`osteoscan.audit.shortcut`) and the same random forest,
fitted on each training part and scored on its test fold, so it is comparable row for row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from osteoscan.audit.fingerprint import fingerprint_files
from osteoscan.audit.shortcut import _feature_matrix
from osteoscan.study.folds import Fold


def shortcut_probabilities(
    paths: Sequence[Path],
    targets: np.ndarray,
    folds: Sequence[Fold],
    cache_dir: Path | None,
    seed: int,
) -> dict[int, np.ndarray]:
    """Out-of-fold P(positive class) for every record, per repeat (1-based)."""
    fingerprints = fingerprint_files(list(paths), cache_dir)
    _, features = _feature_matrix(fingerprints)
    out: dict[int, np.ndarray] = {}
    for fold in folds:
        model = RandomForestClassifier(n_estimators=100, min_samples_leaf=3, random_state=seed)
        model.fit(features[fold.train_index], targets[fold.train_index])
        proba = np.zeros((len(fold.test_index), 2))
        proba[:, model.classes_] = model.predict_proba(features[fold.test_index])
        out.setdefault(fold.repeat, np.zeros(len(targets)))[fold.test_index] = proba[:, 1]
    return out
