"""Screening metrics with 95% percentile-bootstrap confidence intervals.

Binary task: the positive class is osteoporosis; ``sensitivity`` is its recall and
``specificity`` the recall of normal. Three-class: per-class one-vs-rest metrics (``_<class>``)
and their macro averages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from osteoscan.stats import DEFAULT_BOOTSTRAP, bootstrap_cis, macro_auc, roc_auc


@dataclass(frozen=True)
class MetricValue:
    value: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict:
        return {"value": _clean(self.value), "ci95": [_clean(self.ci95[0]), _clean(self.ci95[1])]}


def _clean(x: float) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 6)


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics by name, the confusion matrix (rows: true class, columns: predicted) and n."""

    metrics: dict[str, MetricValue]
    confusion_matrix: list[list[int]]
    class_names: tuple[str, ...]
    n: int
    threshold: float | None

    def to_dict(self) -> dict:
        out: dict = {name: m.to_dict() for name, m in self.metrics.items()}
        out["confusion_matrix"] = self.confusion_matrix
        out["n"] = self.n
        return out

    def table(self) -> str:
        lines = [f"{'metric':<26}{'value':>8}   95% CI", "-" * 50]
        for name, m in self.metrics.items():
            lo, hi = m.ci95
            lines.append(f"{name:<26}{_fmt(m.value):>8}   [{_fmt(lo)}, {_fmt(hi)}]")
        lines += [
            "",
            f"n = {self.n}"
            + (
                f", decision threshold = {self.threshold:.3f}" if self.threshold is not None else ""
            ),
            "confusion matrix (rows = true, columns = predicted):",
        ]
        width = max(len(c) for c in self.class_names) + 2
        lines.append(" " * width + "".join(f"{c:>{width}}" for c in self.class_names))
        for name, row in zip(self.class_names, self.confusion_matrix, strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row))
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return "n/a" if x is None or np.isnan(x) else f"{x:.3f}"


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def _binary_point(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    tp = float(np.sum(pred & y))
    tn = float(np.sum(~pred & ~y))
    fp = float(np.sum(pred & ~y))
    fn = float(np.sum(~pred & y))
    return {
        "accuracy": _ratio(tp + tn, len(y)),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def confusion(y: np.ndarray, pred: np.ndarray, num_classes: int) -> list[list[int]]:
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (y, pred), 1)
    return matrix.tolist()


def _with_cis(
    statistics: Callable[..., dict[str, float]], arrays: tuple, n_boot: int, seed: int
) -> dict[str, MetricValue]:
    point = statistics(*arrays)
    cis = bootstrap_cis(statistics, *arrays, n_boot=n_boot, seed=seed)
    return {name: MetricValue(value, cis[name]) for name, value in point.items()}


def binary_metrics(
    targets: np.ndarray,
    prob_positive: np.ndarray,
    threshold: float,
    class_names: tuple[str, ...],
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> EvaluationResult:
    y = np.asarray(targets) == 1
    prob = np.asarray(prob_positive, dtype=np.float64)

    def statistics(yy: np.ndarray, pp: np.ndarray) -> dict[str, float]:
        return _binary_point(yy, pp >= threshold) | {"roc_auc": roc_auc(yy, pp)}

    metrics = _with_cis(statistics, (y, prob), n_boot, seed)
    pred = (prob >= threshold).astype(int)
    return EvaluationResult(
        metrics, confusion(y.astype(int), pred, 2), class_names, len(y), threshold
    )


def _nanmean(values: list[float]) -> float:
    return float("nan") if np.all(np.isnan(values)) else float(np.nanmean(values))


def multiclass_metrics(
    targets: np.ndarray,
    probs: np.ndarray,
    class_names: tuple[str, ...],
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> EvaluationResult:
    y = np.asarray(targets)
    probs = np.asarray(probs, dtype=np.float64)
    keys = ("sensitivity", "specificity", "precision", "f1", "roc_auc")

    def statistics(yy: np.ndarray, pp: np.ndarray) -> dict[str, float]:
        pred = pp.argmax(1)
        per_class = {}
        for c, name in enumerate(class_names):
            values = _binary_point(yy == c, pred == c) | {"roc_auc": roc_auc(yy == c, pp[:, c])}
            per_class |= {f"{key}_{name}": values[key] for key in keys}
        macro = {
            f"macro_{key}": _nanmean([per_class[f"{key}_{n}"] for n in class_names])
            for key in keys
            if key != "roc_auc"
        } | {"macro_roc_auc": macro_auc(yy, pp)}
        return {"accuracy": float(np.mean(pred == yy))} | macro | per_class

    metrics = _with_cis(statistics, (y, probs), n_boot, seed)
    return EvaluationResult(
        metrics, confusion(y, probs.argmax(1), len(class_names)), class_names, len(y), None
    )


def threshold_below(scores: np.ndarray, cut: float) -> float:
    """A threshold that calls the same ``scores`` positive as ``score >= cut`` does, placed midway
    between ``cut`` and the next lower score, so that no image sits on it and rounding noise
    (float32 against float64, one backend against another) cannot flip a decision."""
    scores = np.asarray(scores, np.float64)
    lower = scores[scores < cut]
    return float((cut + lower.max()) / 2.0) if lower.size else float(cut / 2.0)


def youden_threshold(targets: np.ndarray, prob_positive: np.ndarray) -> float:
    """The threshold maximising sensitivity + specificity - 1 (ties: the one nearest 0.5), placed
    between two scores (:func:`threshold_below`)."""
    y = np.asarray(targets) == 1
    prob = np.asarray(prob_positive, dtype=np.float64)
    candidates = np.unique(np.concatenate([prob, [0.5]]))
    best, best_j = 0.5, -np.inf
    for t in candidates:
        pred = prob >= t
        j = _ratio(np.sum(pred & y), y.sum()) + _ratio(np.sum(~pred & ~y), (~y).sum()) - 1
        if j > best_j + 1e-12 or (abs(j - best_j) <= 1e-12 and abs(t - 0.5) < abs(best - 0.5)):
            best, best_j = float(t), j
    return threshold_below(prob, best)


def evaluate_predictions(
    targets: np.ndarray,
    probs: np.ndarray,
    class_names: tuple[str, ...],
    threshold: float | None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> EvaluationResult:
    """Binary metrics at ``threshold`` for two classes, multi-class metrics otherwise."""
    if len(class_names) == 2:
        return binary_metrics(
            targets,
            probs[:, 1],
            threshold if threshold is not None else 0.5,
            class_names,
            n_boot,
            seed,
        )
    return multiclass_metrics(targets, probs, class_names, n_boot, seed)
