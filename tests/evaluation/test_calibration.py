"""Calibration measures, temperature scaling and the target-sensitivity threshold."""

import numpy as np
import pytest

from osteoscan.errors import BadConfigError
from osteoscan.evaluation.calibration import (
    brier_score,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    operating_point,
    save_reliability_diagram,
    threshold_for_sensitivity,
)
from osteoscan.stats import softmax


def _overconfident(n=2000, true_temperature=3.0, seed=0):
    """Labels drawn from calibrated probabilities, logits then multiplied by 3: over-confident."""
    rng = np.random.default_rng(seed)
    margin = rng.normal(0.0, 1.5, n)
    targets = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(np.int64)
    logits = np.stack([np.zeros(n), margin * true_temperature], axis=1)
    return logits, targets


def test_temperature_scaling_recovers_the_temperature_and_lowers_ece():
    logits, targets = _overconfident()
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(targets, softmax(logits))
    after = expected_calibration_error(targets, softmax(logits, temperature))
    assert before > 0.08 and after < before / 3
    assert brier_score(targets, softmax(logits, temperature)) < brier_score(
        targets, softmax(logits)
    )


def test_ece_and_brier_by_hand():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    targets = np.array([0, 1, 0, 1])
    # bins of P(osteoporosis): 0.1 -> bin 0 (observed 0), 0.8 -> bin 7 (1), 0.7 -> bin 6 (0),
    # 0.4 -> bin 3 (1): |0-0.1| + |1-0.8| + |0-0.7| + |1-0.4| over 4
    assert expected_calibration_error(targets, probs) == pytest.approx((0.1 + 0.2 + 0.7 + 0.6) / 4)
    assert brier_score(targets, probs) == pytest.approx((0.01 + 0.04 + 0.49 + 0.36) / 4)


def test_threshold_reaches_the_target_sensitivity_and_is_the_most_specific():
    y = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    score = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.1, 0.2, 0.35, 0.45, 0.05])
    threshold = threshold_for_sensitivity(y, score, 0.9)
    # 9 of 10 positives are >= 0.3 (0.4 finds only 8); the next lower score is 0.2: midway
    assert threshold == pytest.approx(0.25)
    point = operating_point(y, score, 0.9, n_boot=200)
    assert point.sensitivity == pytest.approx(0.9) and point.specificity == pytest.approx(0.5)
    for low, high in (point.sensitivity_ci, point.specificity_ci, point.threshold_ci):
        assert low <= high
    assert point.threshold_ci[0] <= threshold <= point.threshold_ci[1]
    with pytest.raises(BadConfigError, match="both normal and osteoporosis"):
        operating_point(np.ones(4), np.ones(4))


def test_reliability_diagram_is_written(tmp_path):
    logits, targets = _overconfident(n=300)
    report = calibration_report(targets, softmax(logits))
    out = save_reliability_diagram(report, tmp_path / "reliability.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(report.to_dict()["reliability"]["counts"]) == 300
