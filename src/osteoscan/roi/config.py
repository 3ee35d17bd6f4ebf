"""The one definition of every knee-ROI parameter; stored in a model bundle as a plain dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from osteoscan.errors import BadConfigError

MIRROR_CHOICES = ("none", "left", "right")
# What a model looks at: "none" the whole letterboxed image, "knee" one square crop per knee.
ROI_KINDS = ("none", "knee")


@dataclass(frozen=True)
class RoiConfig:
    """How knees are found and cropped. Defaults are the ones measured on the 372-image set.

    ``roi_scale``: side of the square crop as a multiple of the measured joint (condyle) width;
    1.6 shows both condyles, the tibial plateau and about a third of a joint width of metaphysis
    above and below, the field DeepKnee-style classifiers use.
    ``mirror``: ``"left"`` flips crops of knees found to be left knees so every crop looks like a
    right knee (``"right"`` the other way round); knees of unknown side are never flipped.
    ``radiological_display``: a bilateral view is shown as if facing the patient, so the knee on
    the image's left is the patient's right knee. Single knees get no side.
    ``min_confidence``: below it a candidate joint is reported as "no knee found".
    ``work_size``: the longer side the image is shrunk to before searching (speed).
    ``joint_width_mm``: plausible condyle widths; used only when the file states a pixel spacing.
    """

    roi_scale: float = 1.6
    mirror: str = "none"
    radiological_display: bool = True
    min_confidence: float = 0.35
    work_size: int = 320
    max_knees: int = 2
    joint_width_mm: tuple[float, float] = (50.0, 130.0)

    def __post_init__(self) -> None:
        if not 1.0 <= self.roi_scale <= 4.0:
            raise BadConfigError(f"ROI roi_scale={self.roi_scale}: use 1.0-4.0 joint widths")
        if self.mirror not in MIRROR_CHOICES:
            raise BadConfigError(
                f"ROI mirror={self.mirror!r}: use one of {', '.join(MIRROR_CHOICES)}"
            )
        if not 0.0 <= self.min_confidence < 1.0:
            raise BadConfigError(f"ROI min_confidence={self.min_confidence}: use [0, 1)")
        if self.work_size < 96:
            raise BadConfigError(f"ROI work_size={self.work_size}: use at least 96 pixels")
        if self.max_knees not in (1, 2):
            raise BadConfigError(f"ROI max_knees={self.max_knees}: use 1 or 2")
        low, high = self.joint_width_mm
        if not 0 < low < high:
            raise BadConfigError(f"ROI joint_width_mm={self.joint_width_mm}: use (low, high) mm")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists), for the bundle's metadata."""
        values = asdict(self)
        values["joint_width_mm"] = list(self.joint_width_mm)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RoiConfig:
        """The inverse of :meth:`to_dict`; unknown keys are refused, missing ones take defaults."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BadConfigError(f"ROI settings: unknown key(s) {', '.join(unknown)}")
        values = dict(values)
        if "joint_width_mm" in values:
            values["joint_width_mm"] = tuple(float(v) for v in values["joint_width_mm"])
        return cls(**values)
