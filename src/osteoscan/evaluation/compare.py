"""Paired comparisons of two classifiers on the same images.

* :func:`mcnemar` compares accuracies: the exact two-sided binomial test on the discordant pairs
  (the default; right for the few dozen discordant images of a small study), or the chi-square
  test with Edwards' continuity correction.
* :func:`delong` compares ROC AUCs: DeLong, DeLong & Clarke-Pearson (1988), with the variance
  from the structural components, two-sided normal p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class McNemarResult:
    only_a_correct: int  # b: images the first classifier got right and the second wrong
    only_b_correct: int  # c
    statistic: float  # b for the exact test, chi-square otherwise
    p_value: float
    method: str


@dataclass(frozen=True)
class DeLongResult:
    auc_a: float
    auc_b: float
    difference: float  # auc_a - auc_b
    standard_error: float
    z: float
    p_value: float


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray, exact: bool = True) -> McNemarResult:
    """McNemar's test of equal accuracy from per-image correctness of two classifiers."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired inputs differ in length: {a.shape} vs {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    if exact:
        if n == 0:
            p = 1.0
        else:
            tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2.0**n
            p = min(1.0, 2.0 * tail)
        return McNemarResult(only_a, only_b, float(only_a), p, "exact binomial, two-sided")
    chi2 = max(0.0, abs(only_a - only_b) - 1.0) ** 2 / n if n else 0.0
    p = math.erfc(math.sqrt(chi2 / 2.0))  # chi-square survival function with 1 df
    return McNemarResult(only_a, only_b, chi2, p, "chi-square with continuity correction")


def _structural_components(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, ...]:
    """DeLong's V10 (per positive) and V01 (per negative); ties count one half."""
    greater = (positive[:, None] > negative[None, :]).astype(np.float64)
    ties = (positive[:, None] == negative[None, :]).astype(np.float64)
    psi = greater + 0.5 * ties
    return psi.mean(axis=1), psi.mean(axis=0)


def delong(targets: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> DeLongResult:
    """DeLong's test of equal ROC AUC for two scores of the same images (``targets`` 1 = positive)."""
    y = np.asarray(targets).astype(bool)
    scores = [np.asarray(score_a, dtype=np.float64), np.asarray(score_b, dtype=np.float64)]
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least two positive and two negative images")
    v10, v01 = zip(*(_structural_components(s[y], s[~y]) for s in scores), strict=True)
    aucs = [float(v.mean()) for v in v10]
    s10, s01 = np.cov(np.stack(v10)), np.cov(np.stack(v01))
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (
        s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]
    ) / n
    difference = aucs[0] - aucs[1]
    if variance <= 0.0:
        z, p = 0.0, 1.0 if difference == 0.0 else 0.0
        return DeLongResult(aucs[0], aucs[1], difference, 0.0, z, p)
    se = math.sqrt(variance)
    z = difference / se
    return DeLongResult(aucs[0], aucs[1], difference, se, z, math.erfc(abs(z) / math.sqrt(2.0)))
