"""Class names, WHO T-score thresholds and the classification tasks built on them.

The WHO definition (T-score of bone mineral density):
normal >= -1.0; osteopenia between -2.5 and -1.0; osteoporosis <= -2.5.
This module is the one place those numbers and names live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from osteoscan.errors import BadConfigError

NORMAL = "normal"
OSTEOPENIA = "osteopenia"
OSTEOPOROSIS = "osteoporosis"
ALL_CLASSES: tuple[str, ...] = (NORMAL, OSTEOPENIA, OSTEOPOROSIS)

WHO_NORMAL_MIN = -1.0
WHO_OSTEOPOROSIS_MAX = -2.5

OsteopeniaPolicy = Literal["exclude", "normal", "osteoporosis"]
TaskName = Literal["binary", "three-class"]


def who_class(t_score: float) -> str:
    """The WHO class of a T-score."""
    if math.isnan(t_score):
        raise ValueError("T-score is NaN")
    if t_score >= WHO_NORMAL_MIN:
        return NORMAL
    if t_score <= WHO_OSTEOPOROSIS_MAX:
        return OSTEOPOROSIS
    return OSTEOPENIA


def normalise_class_name(name: str) -> str | None:
    """Map a folder or CSV label to a known class name (case-insensitive), else None."""
    key = name.strip().lower()
    return key if key in ALL_CLASSES else None


@dataclass(frozen=True)
class Task:
    """Which classes a model predicts and what happens to osteopenia in the binary task.

    In the binary task the positive class is always ``osteoporosis``; ``sensitivity`` is its recall.
    """

    name: TaskName = "binary"
    osteopenia: OsteopeniaPolicy = "exclude"

    def __post_init__(self) -> None:
        if self.name not in ("binary", "three-class"):
            raise BadConfigError(f"unknown task {self.name!r}: use 'binary' or 'three-class'")
        if self.osteopenia not in ("exclude", NORMAL, OSTEOPOROSIS):
            raise BadConfigError(
                f"unknown osteopenia policy {self.osteopenia!r}: "
                "use 'exclude', 'normal' or 'osteoporosis'"
            )

    @property
    def class_names(self) -> tuple[str, ...]:
        return (NORMAL, OSTEOPOROSIS) if self.name == "binary" else ALL_CLASSES

    @property
    def positive_class(self) -> str | None:
        return OSTEOPOROSIS if self.name == "binary" else None

    def target(self, label: str) -> int | None:
        """Class index of a label under this task, or None when the task excludes it."""
        if self.name == "binary" and label == OSTEOPENIA:
            if self.osteopenia == "exclude":
                return None
            label = self.osteopenia
        return self.class_names.index(label)

    def to_dict(self) -> dict:
        return {"name": self.name, "osteopenia": self.osteopenia}
