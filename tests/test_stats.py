import numpy as np

from osteoscan.stats import macro_auc, roc_auc


def test_macro_auc_binary_is_auc_of_class_one():
    targets = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert macro_auc(targets, probs) == roc_auc(targets == 1, probs[:, 1]) == 0.75


def test_macro_auc_three_class_averages_one_vs_rest_and_skips_absent_class():
    targets = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.4, 0.5, 0.1], [0.1, 0.7, 0.2]])
    expected = np.mean([roc_auc(targets == 0, probs[:, 0]), roc_auc(targets == 1, probs[:, 1])])
    assert macro_auc(targets, probs) == expected
    assert np.isnan(macro_auc(np.array([0, 0]), probs[:2]))
