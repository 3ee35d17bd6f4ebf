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


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64, stable for large logits."""
    scaled = np.asarray(logits, np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def macro_auc(targets: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC of class 1 for two classes; the mean one-vs-rest AUC over classes otherwise.

    ``targets`` are class indices, ``probs`` (N, C) scores. Classes absent from ``targets`` are
    left out of the mean; NaN when no class has both positives and negatives.
    """
    targets = np.asarray(targets)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[1] == 2:
        return roc_auc(targets == 1, probs[:, 1])
    per_class = np.array([roc_auc(targets == c, probs[:, c]) for c in range(probs.shape[1])])
    return float(np.nanmean(per_class)) if not np.isnan(per_class).all() else float("nan")


def bootstrap_cis(
    statistics: Callable[..., dict[str, float]],
    *arrays: np.ndarray,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every value ``statistics(*arrays)`` returns.

    All statistics share the same resamples (rows drawn with replacement). Resamples where a
    statistic is undefined (NaN, e.g. AUC with one class) are skipped for that statistic;
    (nan, nan) when none gives a value.
    """
    n = len(arrays[0])
    names = list(statistics(*arrays))
    if n == 0:
        return {name: (float("nan"), float("nan")) for name in names}
    rng = np.random.default_rng(seed)
    draws = np.full((n_boot, len(names)), np.nan)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        values = statistics(*(a[idx] for a in arrays))
        draws[b] = [values[name] for name in names]
    alpha = (1.0 - level) / 2.0
    out = {}
    for j, name in enumerate(names):
        column = draws[:, j][~np.isnan(draws[:, j])]
        if column.size == 0:
            out[name] = (float("nan"), float("nan"))
        else:
            low, high = np.quantile(column, [alpha, 1.0 - alpha])
            out[name] = (float(low), float(high))
    return out


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval of one statistic (see :func:`bootstrap_cis`)."""
    return bootstrap_cis(
        lambda *a: {"value": statistic(*a)}, *arrays, n_boot=n_boot, seed=seed, level=level
    )["value"]
