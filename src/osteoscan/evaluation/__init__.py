"""Metrics, bootstrap confidence intervals and operating thresholds."""

from osteoscan.evaluation.metrics import (
    EvaluationResult,
    MetricValue,
    binary_metrics,
    evaluate_predictions,
    multiclass_metrics,
    youden_threshold,
)

__all__ = [
    "EvaluationResult",
    "MetricValue",
    "binary_metrics",
    "evaluate_predictions",
    "multiclass_metrics",
    "youden_threshold",
]
