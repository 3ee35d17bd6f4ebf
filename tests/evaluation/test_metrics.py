import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from osteoscan.evaluation import binary_metrics, evaluate_predictions, youden_threshold

BINARY = ("normal", "osteoporosis")
THREE = ("normal", "osteopenia", "osteoporosis")


def test_known_confusion_matrix_gives_textbook_values():
    # 6 osteoporosis (4 caught), 4 normal (3 correctly cleared)
    y = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.3, 0.2, 0.1, 0.7])
    result = binary_metrics(y, p, 0.5, BINARY, n_boot=200)
    m = {k: v.value for k, v in result.metrics.items()}
    assert m["sensitivity"] == pytest.approx(4 / 6)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx(4 / 5)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 2))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert result.confusion_matrix == [[3, 1], [2, 4]]
    assert result.n == 10


def test_confidence_intervals_contain_the_estimate_and_shrink_with_n():
    rng = np.random.default_rng(0)

    def width(n):
        y = rng.integers(0, 2, n)
        p = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, n), 0, 1)
        r = binary_metrics(y, p, 0.5, BINARY, n_boot=500)
        for v in r.metrics.values():
            assert v.ci95[0] <= v.value <= v.ci95[1]
        lo, hi = r.metrics["accuracy"].ci95
        return hi - lo

    assert width(1000) < width(40) / 2


def test_perfect_classifier_has_degenerate_intervals():
    y = np.array([0, 1] * 20)
    r = binary_metrics(y, y.astype(float), 0.5, BINARY, n_boot=100)
    assert r.metrics["roc_auc"].value == 1.0
    assert r.metrics["sensitivity"].ci95 == (1.0, 1.0)


def test_json_shape_is_metric_objects_plus_confusion_matrix_and_n():
    y = np.array([0, 1, 0, 1, 1, 0])
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3], [0.2, 0.8]])
    doc = json.loads(json.dumps(evaluate_predictions(y, probs, BINARY, 0.5, n_boot=50).to_dict()))
    for name in ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc"):
        assert set(doc[name]) == {"value", "ci95"} and len(doc[name]["ci95"]) == 2
    assert doc["n"] == 6 and doc["confusion_matrix"] == [[2, 1], [1, 2]]


def test_three_class_reports_per_class_and_macro():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60)
    probs = rng.dirichlet([1, 1, 1], 60)
    probs[np.arange(60), y] += 1.0
    probs /= probs.sum(1, keepdims=True)
    r = evaluate_predictions(y, probs, THREE, None, n_boot=50)
    for cls in THREE:
        assert f"sensitivity_{cls}" in r.metrics and f"roc_auc_{cls}" in r.metrics
    recalls = [r.metrics[f"sensitivity_{c}"].value for c in THREE]
    assert r.metrics["macro_sensitivity"].value == pytest.approx(np.mean(recalls))
    macro = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert r.metrics["macro_roc_auc"].value == pytest.approx(macro)
    assert r.metrics["accuracy"].value == pytest.approx(np.mean(probs.argmax(1) == y))
    assert np.array(r.confusion_matrix).sum() == 60


def test_youden_threshold_separates_separable_scores():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.4])
    t = youden_threshold(y, p)
    assert t == pytest.approx(0.25)  # midway between the last negative and the first positive
    assert binary_metrics(y, p, t, BINARY, n_boot=10).metrics["accuracy"].value == 1.0


def test_threshold_below_keeps_every_decision_but_sits_on_no_score():
    from osteoscan.evaluation.metrics import threshold_below

    scores = np.array([0.1, 0.4, 0.4, 0.7])
    t = threshold_below(scores, 0.4)
    assert t == pytest.approx(0.25) and not np.isin(t, scores)
    assert ((scores >= t) == (scores >= 0.4)).all()
    assert threshold_below(scores, 0.1) == pytest.approx(0.05)  # nothing below: all positive
