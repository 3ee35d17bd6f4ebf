"""McNemar and DeLong against values worked out by hand on small fixed inputs."""

import math

import numpy as np
import pytest

from osteoscan.evaluation.compare import delong, mcnemar


def _pairs(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return np.array(a), np.array(b)


def test_exact_mcnemar_is_the_two_sided_binomial_tail_of_the_discordant_pairs():
    # b = 1, c = 6, n = 7: P = 2 * (C(7,0) + C(7,1)) / 2**7 = 2 * 8 / 128 = 0.125
    result = mcnemar(*_pairs(20, 1, 6, 3))
    assert (result.only_a_correct, result.only_b_correct) == (1, 6)
    assert result.p_value == pytest.approx(0.125)
    assert "exact" in result.method


def test_exact_mcnemar_caps_at_one_and_handles_no_discordant_pairs():
    assert mcnemar(*_pairs(5, 3, 3, 1)).p_value == 1.0  # 2 * 42/64 > 1
    assert mcnemar(*_pairs(5, 0, 0, 5)).p_value == 1.0


def test_continuity_corrected_mcnemar():
    # b = 2, c = 10: chi2 = (|2 - 10| - 1)^2 / 12 = 49/12; P(chi2_1 > 4.083) = 0.0433
    result = mcnemar(*_pairs(30, 2, 10, 4), exact=False)
    assert result.statistic == pytest.approx(49 / 12)
    assert result.p_value == pytest.approx(0.04331, abs=2e-5)
    assert "continuity" in result.method


def test_delong_matches_the_structural_components_worked_by_hand():
    # positives: A = .9 .8 .4, B = .7 .6 .2; negatives: A = .5 .3, B = .8 .1
    # A: V10 = (1, 1, 1/2), V01 = (2/3, 1), AUC 5/6; B: V10 = (1/2, 1/2, 1/2), V01 = (0, 1), AUC 1/2
    # S10: var A = 1/12, var B = 0, cov 0; S01: var A = 1/18, var B = 1/2, cov = 1/6
    # var(A - B) = (1/12)/3 + (1/18 + 1/2 - 1/3)/2 = 5/36; z = (1/3) / (sqrt(5)/6) = 2/sqrt(5)
    targets = np.array([1, 1, 1, 0, 0])
    result = delong(
        targets, np.array([0.9, 0.8, 0.4, 0.5, 0.3]), np.array([0.7, 0.6, 0.2, 0.8, 0.1])
    )
    assert result.auc_a == pytest.approx(5 / 6)
    assert result.auc_b == pytest.approx(0.5)
    assert result.standard_error == pytest.approx(math.sqrt(5) / 6)
    assert result.z == pytest.approx(2 / math.sqrt(5))
    assert result.p_value == pytest.approx(0.37109, abs=1e-5)  # 2 * (1 - Phi(0.8944))


def test_delong_of_a_score_against_itself_is_no_difference():
    targets = np.array([1, 0, 1, 0, 1, 0])
    score = np.array([0.9, 0.2, 0.6, 0.7, 0.4, 0.1])
    result = delong(targets, score, score)
    assert result.difference == 0.0 and result.p_value == 1.0


def test_delong_needs_both_classes():
    with pytest.raises(ValueError, match="two positive and two negative"):
        delong(np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.2, 0.1]))
