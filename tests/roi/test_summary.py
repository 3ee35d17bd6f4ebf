"""The one image-level rule: a radiograph is scored by its most abnormal knee."""

import numpy as np

from osteoscan.roi import image_rows, most_abnormal


def test_each_image_is_scored_by_its_knee_least_likely_normal():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    # images 7 (two knees), 3 (one knee), 5 (two knees, not adjacent)
    assert image_rows(probs, [7, 7, 3, 5, 5]).tolist() == [1, 2, 3]
    assert image_rows(probs, [4, 9, 4, 9, 1]).tolist() == [0, 1, 4]  # order of first sight
    three = np.array([[0.5, 0.4, 0.1], [0.3, 0.1, 0.6], [0.2, 0.7, 0.1]])
    assert most_abnormal(three) == 2  # lowest probability of normal, whatever the other classes
