"""One result per radiograph from its knees: the knee that looks most abnormal speaks for it.

The label of a radiograph belongs to the patient, not to one knee, so an image is scored by
the knee with the lowest probability of the first class (``normal``): in the binary task, the
higher probability of osteoporosis. evaluate, predict and calibrate all use this one rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SUMMARY_RULE = "the knee with the higher probability of osteoporosis (lower probability of normal)"


def most_abnormal(probs: np.ndarray) -> int:
    """Row of ``probs`` (knees x classes, class 0 normal) that speaks for the radiograph."""
    return int(np.argmin(np.asarray(probs)[:, 0]))


def image_rows(probs: np.ndarray, image_ids: Sequence[int]) -> np.ndarray:
    """For each distinct image id (in order of first appearance) the row of its most abnormal
    knee: ``probs[rows]`` are the image-level probabilities."""
    members: dict[int, list[int]] = {}
    for row, image in enumerate(np.asarray(image_ids).tolist()):
        members.setdefault(image, []).append(row)
    return np.asarray(
        [rows[most_abnormal(probs[rows])] for rows in members.values()], dtype=np.int64
    )
