"""Calibration: temperature scaling, ECE, Brier score, reliability diagram, and the operating
threshold that reaches a target sensitivity (with bootstrap confidence intervals).

In the binary task every measure is about the probability of osteoporosis (class 1): ECE
compares, in :data:`N_BINS` equal-width bins, the mean predicted probability with the observed
fraction of osteoporosis. With more classes, ECE uses the top-label confidence and accuracy.
Torch-free (numpy only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from osteoscan.errors import BadConfigError
from osteoscan.evaluation.metrics import threshold_below
from osteoscan.stats import DEFAULT_BOOTSTRAP, bootstrap_cis

N_BINS = 10
DEFAULT_TARGET_SENSITIVITY = 0.90
_LOG_T_RANGE = (-4.0, 4.0)  # temperatures from about 0.02 to 55


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``targets`` under ``softmax(logits / temperature)``."""
    scaled = np.asarray(logits, np.float64) / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising held-out NLL (golden-section search over log T; the NLL is
    convex in 1/T, so the search finds the one minimum)."""
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) < 2:
        raise BadConfigError("temperature scaling needs at least 2 labelled images")
    lo, hi = _LOG_T_RANGE
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, targets, np.exp(a)), nll(logits, targets, np.exp(b))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, targets, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, targets, np.exp(b))
    return float(np.exp((lo + hi) / 2.0))


def _scores(targets: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted probability, observed outcome 0/1) pairs that ECE and the diagram bin."""
    probs = np.asarray(probs, np.float64)
    targets = np.asarray(targets)
    if probs.shape[1] == 2:
        return probs[:, 1], (targets == 1).astype(np.float64)
    return probs.max(axis=1), (probs.argmax(axis=1) == targets).astype(np.float64)


@dataclass(frozen=True)
class ReliabilityBins:
    """Per equal-width bin: number of images, mean predicted probability, observed frequency."""

    edges: np.ndarray
    counts: np.ndarray
    mean_predicted: np.ndarray
    observed: np.ndarray


def reliability_bins(
    targets: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS
) -> ReliabilityBins:
    predicted, outcome = _scores(targets, probs)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(predicted, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(index, predicted, n_bins) / counts
        observed = np.bincount(index, outcome, n_bins) / counts
    return ReliabilityBins(edges, counts, mean_predicted, observed)


def expected_calibration_error(
    targets: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS
) -> float:
    """Count-weighted mean |observed - predicted| over the bins (0 = perfectly calibrated)."""
    bins = reliability_bins(targets, probs, n_bins)
    used = bins.counts > 0
    gaps = np.abs(bins.observed[used] - bins.mean_predicted[used])
    return float((gaps * bins.counts[used]).sum() / bins.counts.sum())


def brier_score(targets: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared error of the probabilities (binary: of osteoporosis; else summed over classes)."""
    probs = np.asarray(probs, np.float64)
    targets = np.asarray(targets)
    if probs.shape[1] == 2:
        return float(np.mean((probs[:, 1] - (targets == 1)) ** 2))
    onehot = np.eye(probs.shape[1])[targets]
    return float(np.mean(((probs - onehot) ** 2).sum(axis=1)))


@dataclass(frozen=True)
class CalibrationReport:
    """What ``evaluate`` reports about calibration."""

    ece: float
    brier: float
    bins: ReliabilityBins

    def to_dict(self) -> dict:
        return {
            "ece": self.ece,
            "brier": self.brier,
            "reliability": {
                "edges": self.bins.edges.tolist(),
                "counts": self.bins.counts.tolist(),
                "mean_predicted": self.bins.mean_predicted.tolist(),
                "observed": self.bins.observed.tolist(),
            },
        }


def calibration_report(
    targets: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS
) -> CalibrationReport:
    return CalibrationReport(
        expected_calibration_error(targets, probs, n_bins),
        brier_score(targets, probs),
        reliability_bins(targets, probs, n_bins),
    )


def save_reliability_diagram(report: CalibrationReport, out: Path | str, title: str = "") -> Path:
    """The reliability diagram (observed vs predicted per bin, bin counts below) as PNG."""
    from matplotlib.figure import Figure

    from osteoscan.files import atomic_path

    bins = report.bins
    centres = (bins.edges[:-1] + bins.edges[1:]) / 2.0
    width = bins.edges[1] - bins.edges[0]
    fig = Figure(figsize=(4.5, 5.5), dpi=100)
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    used = bins.counts > 0
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.bar(centres[used], bins.observed[used], width=width * 0.9, alpha=0.6, label="observed")
    top.plot(bins.mean_predicted[used], bins.observed[used], "o-", color="C1", label="bins")
    top.set_ylabel("observed frequency")
    top.set_ylim(0, 1)
    top.set_title(title or f"ECE {report.ece:.3f}, Brier {report.brier:.3f}", fontsize=9)
    top.legend(fontsize=7, loc="upper left")
    bottom.bar(centres, bins.counts, width=width * 0.9, color="grey")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("images")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return Path(out)


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold on P(osteoporosis) and what it achieved on the data it was chosen on."""

    threshold: float
    sensitivity: float
    specificity: float
    threshold_ci: tuple[float, float]
    sensitivity_ci: tuple[float, float]
    specificity_ci: tuple[float, float]


def threshold_for_sensitivity(y_true: np.ndarray, score: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity (``score >= threshold`` among positives) reaches
    ``target``: the most specific rule that still finds that share of osteoporosis cases, placed
    between two scores (:func:`~osteoscan.evaluation.metrics.threshold_below`)."""
    if not 0.0 < target <= 1.0:
        raise BadConfigError(f"target sensitivity {target} must lie in (0, 1]")
    positives = np.sort(np.asarray(score, np.float64)[np.asarray(y_true).astype(bool)])[::-1]
    if positives.size == 0:
        return float("nan")
    needed = int(np.ceil(target * positives.size - 1e-9))
    return threshold_below(score, positives[max(needed, 1) - 1])


def _rates(y_true: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    y_true = np.asarray(y_true).astype(bool)
    called = np.asarray(score) >= threshold
    sens = called[y_true].mean() if y_true.any() else float("nan")
    spec = (~called[~y_true]).mean() if (~y_true).any() else float("nan")
    return float(sens), float(spec)


def operating_point(
    y_true: np.ndarray,
    score: np.ndarray,
    target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> OperatingPoint:
    """Threshold reaching ``target_sensitivity``, its sensitivity/specificity, and percentile
    bootstrap CIs: of the threshold (the rule re-applied to each resample) and of sensitivity and
    specificity at the chosen threshold."""
    y_true = np.asarray(y_true).astype(np.int64)
    score = np.asarray(score, np.float64)
    if y_true.min(initial=1) == y_true.max(initial=0):
        raise BadConfigError("choosing a threshold needs both normal and osteoporosis images")
    threshold = threshold_for_sensitivity(y_true, score, target_sensitivity)
    sensitivity, specificity = _rates(y_true, score, threshold)

    def statistics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
        sens, spec = _rates(y, s, threshold)
        return {
            "threshold": threshold_for_sensitivity(y, s, target_sensitivity),
            "sensitivity": sens,
            "specificity": spec,
        }

    cis = bootstrap_cis(statistics, y_true, score, n_boot=n_boot, seed=seed)
    return OperatingPoint(
        threshold,
        sensitivity,
        specificity,
        cis["threshold"],
        cis["sensitivity"],
        cis["specificity"],
    )
