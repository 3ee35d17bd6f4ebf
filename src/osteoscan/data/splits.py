"""Leakage-free splits: duplicates and patients never straddle train and test.

Records are joined into *leakage groups* (union of: same patient id, exact-duplicate group,
near-duplicate group). Splits are stratified by class and keep every group in one fold.
Duplicate groups whose members carry different labels are dropped unless kept explicitly.
:func:`join_groups` is the one union-find of the package (the audit groups its links with it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from osteoscan.errors import BadManifestError


@dataclass(frozen=True)
class LeakagePlan:
    """Which records to use and which group each belongs to (``group_ids`` align with ``kept``)."""

    kept: list[int]
    group_ids: list[int]
    dropped_conflicting: list[int]
    n_conflicting_groups: int
    n_duplicate_groups: int


def join_groups(n: int, groups: Iterable[Sequence[int]]) -> list[int]:
    """The union-find behind every grouping: items ``0..n-1`` joined by ``groups`` (each a
    sequence of items that belong together, joined transitively); returns one representative
    item per item, equal for items of the same group."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in groups:
        for other in members[1:]:
            parent[find(other)] = find(members[0])
    return [find(i) for i in range(n)]


def plan_leakage_groups(
    labels: Sequence[str | None],
    patient_ids: Sequence[str | None],
    duplicate_groups: Sequence[Sequence[int]],
    keep_conflicts: bool = False,
) -> LeakagePlan:
    """Join records by patient and duplicate group; drop duplicate groups with mixed labels."""
    conflicting = [g for g in duplicate_groups if len({labels[i] for i in g}) > 1]
    dropped = sorted({i for g in conflicting for i in g}) if not keep_conflicts else []
    by_patient: dict[str, list[int]] = {}
    for i, pid in enumerate(patient_ids):
        if pid:
            by_patient.setdefault(pid, []).append(i)
    roots = join_groups(len(labels), [*duplicate_groups, *by_patient.values()])
    dropped_set = set(dropped)
    kept = [i for i in range(len(labels)) if i not in dropped_set]
    if dropped and not kept:
        raise BadManifestError(
            f"every image ({len(dropped)}) is in a duplicate group whose copies carry different "
            f"labels ({len(conflicting)} group(s)), and such groups are dropped; fix the labels "
            "(`osteoscan audit` lists the groups) or pass --keep-conflicts to keep them"
        )
    return LeakagePlan(
        kept=kept,
        group_ids=[roots[i] for i in kept],
        dropped_conflicting=dropped,
        n_conflicting_groups=len(conflicting),
        n_duplicate_groups=len(duplicate_groups),
    )


def grouped_kfold(
    targets: Sequence[int], groups: Sequence[int], k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """k stratified folds that keep each group whole: a list of (train_index, test_index)."""
    shortage = _shortage(targets, groups, k)
    if shortage:
        raise BadManifestError(
            f"{shortage} for {k} stratified folds; add images or use fewer folds"
        )
    return _folds(targets, groups, k, seed)


def train_val_split(
    targets: Sequence[int], groups: Sequence[int], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """One grouped, stratified hold-out split of about ``val_fraction`` for validation."""
    if not 0.0 < val_fraction < 0.5:
        raise BadManifestError(f"validation fraction {val_fraction} must be in (0, 0.5)")
    k = max(2, round(1.0 / val_fraction))
    shortage = _shortage(targets, groups, k)
    if shortage:
        raise BadManifestError(
            f"{shortage}: too few to hold out a validation fraction of {val_fraction:g} "
            f"(at least {k} are needed); add images of more patients or raise --val-fraction"
        )
    train_index, val_index = _folds(targets, groups, k, seed)[0]
    if len(set(np.asarray(targets)[val_index])) < len(set(targets)):
        raise BadManifestError(
            "the validation split lacks a class; add images of the rarer class "
            "or raise --val-fraction"
        )
    return train_index, val_index


def _shortage(targets: Sequence[int], groups: Sequence[int], k: int) -> str | None:
    """Why ``k`` stratified folds that keep groups whole cannot be made, or None."""
    n_groups = len(np.unique(np.asarray(groups)))
    if n_groups < k:
        return f"only {n_groups} independent image groups (patients/duplicates)"
    largest = int(np.unique(np.asarray(targets), return_counts=True)[1].max())
    if largest < k:
        return f"only {largest} images in the largest class"
    return None


def _folds(
    targets: Sequence[int], groups: Sequence[int], k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(targets)), np.asarray(targets), np.asarray(groups)))
