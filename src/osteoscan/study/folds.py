"""The study's folds: made once from the grouped data, shared by every configuration.

Folds are stratified by class and keep each leakage group (patient, exact or near duplicate)
whole; repeat ``r`` reshuffles with seed ``seed + r``. The early-stopping validation split of a
unit is drawn inside the training part of its fold, grouped the same way, never from the test fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from osteoscan.data.splits import grouped_kfold, train_val_split


@dataclass(frozen=True)
class Fold:
    """Test fold ``fold`` (1-based) of repeat ``repeat`` (1-based), as indices into the records."""

    repeat: int
    fold: int
    train_index: np.ndarray
    test_index: np.ndarray


def make_folds(
    targets: Sequence[int], group_ids: Sequence[int], k: int, repeats: int, seed: int
) -> list[Fold]:
    out = []
    for repeat in range(1, repeats + 1):
        splits = grouped_kfold(targets, group_ids, k, seed + repeat - 1)
        out += [Fold(repeat, f, tr, te) for f, (tr, te) in enumerate(splits, start=1)]
    return out


def inner_split(
    targets: np.ndarray,
    group_ids: Sequence[int],
    train_index: np.ndarray,
    val_fraction: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) indices into the records, both inside ``train_index``."""
    groups = np.asarray(group_ids)[train_index]
    fit_part, val_part = train_val_split(targets[train_index], groups, val_fraction, seed)
    return train_index[fit_part], train_index[val_part]


def fold_table(folds: Sequence[Fold], n: int) -> list[list[int]]:
    """For each record, its test fold in each repeat: ``table[i][r - 1]``."""
    repeats = max(f.repeat for f in folds)
    table = [[0] * repeats for _ in range(n)]
    for fold in folds:
        for i in fold.test_index:
            table[int(i)][fold.repeat - 1] = fold.fold
    return table
