"""Shortcut check: can the label be predicted without looking at bone?

A random forest sees only non-anatomical features (width, height, aspect ratio, file size,
format, colour mode, bit depth, border and background statistics) and is scored by
cross-validated ROC AUC, with copies of an image and images of one patient kept in one fold so
that duplicates do not inflate it. An AUC well above 0.5 means a classifier could score well on
this dataset by learning how each class was collected rather than what the bone looks like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from osteoscan.audit.duplicates import DuplicateGroup
from osteoscan.audit.fingerprint import Fingerprint
from osteoscan.data.labels import OSTEOPOROSIS
from osteoscan.data.records import ImageRecord
from osteoscan.data.splits import grouped_kfold, plan_leakage_groups
from osteoscan.stats import bootstrap_ci, macro_auc, roc_auc

WARN_ABOVE = 0.6  # warn when the lower end of the 95% interval is above this AUC
MAX_FOLDS = 5
_NUMERIC = (
    "width",
    "height",
    "aspect_ratio",
    "log_file_size",
    "bit_depth",
    "border_mean",
    "border_std",
    "border_dark",
    "border_bright",
    "background",
)
_CATEGORICAL = ("format", "mode")


@dataclass(frozen=True)
class ShortcutResult:
    """Cross-validated AUC of the label from non-anatomical features alone (None if not run)."""

    auc: float | None
    ci_low: float | None
    ci_high: float | None
    n_images: int
    n_folds: int
    positive_class: str | None
    features: tuple[str, ...]
    strongest: tuple[tuple[str, float], ...]  # single features, folded AUC, strongest first
    warning: str | None
    note: str | None = None  # why the check did not run

    def to_dict(self) -> dict:
        return {
            "auc": self.auc,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n_images": self.n_images,
            "n_folds": self.n_folds,
            "positive_class": self.positive_class,
            "features": list(self.features),
            "strongest": [{"feature": f, "auc": a} for f, a in self.strongest],
            "warning": self.warning,
            "note": self.note,
        }


def check_shortcuts(
    records: Sequence[ImageRecord],
    fingerprints: Sequence[Fingerprint],
    groups: Sequence[DuplicateGroup] = (),
    workers: int = 1,
    seed: int = 0,
) -> ShortcutResult:
    """Cross-validated AUC of the labels of readable ``records`` from their fingerprints."""
    used = [i for i, fp in enumerate(fingerprints) if fp.ok and records[i].label is not None]
    names, features = shortcut_features([fingerprints[i] for i in used])
    leakage = np.asarray(leakage_groups(records, groups), dtype=np.intp)[used]
    labels = [records[i].label for i in used]
    return check_feature_shortcuts(names, features, labels, leakage, workers, seed)


def leakage_groups(records: Sequence[ImageRecord], groups: Sequence[DuplicateGroup]) -> list[int]:
    """Per record its leakage group (same patient or duplicate content), conflicts kept."""
    plan = plan_leakage_groups(
        [r.label for r in records],
        [r.patient_id for r in records],
        [g.members for g in groups],
        keep_conflicts=True,  # a copy under two labels is exactly what a shortcut may exploit
    )
    return plan.group_ids


def check_feature_shortcuts(
    names: Sequence[str],
    features: np.ndarray,
    labels: Sequence[str],
    leakage: np.ndarray,
    workers: int = 1,
    seed: int = 0,
    subject: str = "file properties",
) -> ShortcutResult:
    """Cross-validated AUC of ``labels`` from a matrix of non-anatomical ``features`` (one row
    per sample, columns ``names``), with the samples of one ``leakage`` group in one fold: the
    check of :func:`check_shortcuts`, for any unit (whole images, knee crops). ``subject``
    names the features in the warning."""
    names = tuple(names)
    classes = sorted(set(labels))
    positive = OSTEOPOROSIS if OSTEOPOROSIS in classes else (classes[-1] if classes else None)
    target = np.array([classes.index(label) for label in labels], dtype=np.intp)
    smallest = int(np.bincount(target).min()) if len(classes) > 1 else 0
    n_folds = min(MAX_FOLDS, smallest, len(np.unique(leakage)))
    if n_folds < 2:
        note = (
            "needs at least two classes with two readable images each, in at least two "
            "independent image groups (patients/duplicates)"
        )
        return ShortcutResult(None, None, None, len(labels), 0, positive, names, (), None, note)
    folds = grouped_kfold(target, leakage, n_folds, seed)
    proba = out_of_fold_proba(features, target, folds, seed, workers)
    auc = macro_auc(target, proba)
    low, high = bootstrap_ci(macro_auc, target, proba, seed=seed)
    is_positive = target == classes.index(positive)
    strongest = sorted(
        ((n, _folded(roc_auc(is_positive, features[:, k]))) for k, n in enumerate(names)),
        key=lambda item: -item[1],
    )[:3]
    warning = _warning(auc, low, high, strongest, subject) if low > WARN_ABOVE else None
    return ShortcutResult(
        round(auc, 3),
        round(low, 3),
        round(high, 3),
        len(labels),
        n_folds,
        positive,
        names,
        tuple((n, round(a, 3)) for n, a in strongest),
        warning,
    )


def shortcut_features(
    fingerprints: Sequence[Fingerprint],
) -> tuple[tuple[str, ...], np.ndarray]:
    """The non-anatomical features of readable ``fingerprints``: names and one row per image."""
    columns: dict[str, list[float]] = {name: [] for name in _NUMERIC}
    for fp in fingerprints:
        columns["width"].append(fp.width)
        columns["height"].append(fp.height)
        columns["aspect_ratio"].append(fp.width / max(fp.height, 1))
        columns["log_file_size"].append(float(np.log(max(fp.file_size, 1))))
        columns["bit_depth"].append(fp.bit_depth)
        for name in ("border_mean", "border_std", "border_dark", "border_bright", "background"):
            columns[name].append(getattr(fp, name))
    for field in _CATEGORICAL:
        for value in sorted({getattr(fp, field) for fp in fingerprints}):
            columns[f"{field}={value}"] = [
                float(getattr(fp, field) == value) for fp in fingerprints
            ]
    names = tuple(columns)
    matrix = np.array([columns[n] for n in names], dtype=np.float64).T.reshape(-1, len(names))
    return names, matrix


def out_of_fold_proba(
    features: np.ndarray,
    target: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    seed: int = 0,
    workers: int = 1,
) -> np.ndarray:
    """Class probabilities (N, classes) of each test row from the shortcut forest fitted on its
    fold's training rows; rows in no test part stay zero."""
    proba = np.zeros((len(target), int(target.max()) + 1))
    for train, test in folds:
        model = RandomForestClassifier(
            n_estimators=100, min_samples_leaf=3, random_state=seed, n_jobs=workers
        )
        model.fit(features[train], target[train])
        proba[np.ix_(test, model.classes_)] = model.predict_proba(features[test])
    return proba


def _folded(auc: float) -> float:
    """An AUC below 0.5 is as informative as its mirror above; NaN (constant) counts as 0.5."""
    return 0.5 if np.isnan(auc) else max(auc, 1.0 - auc)


def _warning(
    auc: float,
    low: float,
    high: float,
    strongest: Sequence[tuple[str, float]],
    subject: str = "file properties",
) -> str:
    cues = ", ".join(f"{name} (AUC {value:.2f} alone)" for name, value in strongest)
    return (
        f"WARNING: {subject} that have nothing to do with bone predict the label with "
        f"AUC {auc:.2f} (95% CI {low:.2f}-{high:.2f}); chance is 0.50. The classes were "
        f"probably collected or exported differently, and a model can score well by learning "
        f"that instead of the anatomy. Strongest cues: {cues}. Harmonise formats, sizes and "
        f"borders, or treat accuracy on this dataset with suspicion."
    )
