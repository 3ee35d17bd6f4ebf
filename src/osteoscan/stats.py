"""Small statistics shared by every layer: ROC AUC and percentile-bootstrap confidence intervals.

Lives at the bottom of the package so the audit (data layer) and the evaluation layer use the
same definitions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CI_LEVEL = 0.95
DEFAULT_BOOTSTRAP = 2000


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve for binary ``y_true`` (1 = positive); NaN if one class is absent.

    Uses the Mann-Whitney rank formulation, with ties given half credit.
    """
    y_true = np.asarray(y_true).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(score.size, dtype=np.float64)
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*arrays)``, resampling rows with replacement.

    Resamples where the statistic is undefined (NaN, e.g. AUC with one class) are skipped.
    Returns (nan, nan) when no resample gives a value.
    """
    n = len(arrays[0])
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        value = statistic(*(a[idx] for a in arrays))
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)
