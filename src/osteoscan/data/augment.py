"""What train-time augmentation may do: a torch-free config, so a command line can show its defaults.

The transforms that apply it live in :mod:`osteoscan.data.transforms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from osteoscan.errors import BadConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """Small rotations, zoom/crop and brightness/contrast jitter; flips only when asked for."""

    rotation_degrees: float = 7.0
    zoom_scale: tuple[float, float] = (0.80, 1.0)
    brightness: float = 0.2
    contrast: float = 0.2
    hflip: bool = False

    def __post_init__(self) -> None:
        for name in ("rotation_degrees", "brightness", "contrast"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise BadConfigError(f"augmentation {name}={value!r}: use a number >= 0")
        low, high = self.zoom_scale
        if not 0.0 < low <= high <= 1.0:
            raise BadConfigError(
                f"augmentation zoom_scale={self.zoom_scale!r}: use (low, high) with "
                "0 < low <= high <= 1 (the share of the image a crop keeps)"
            )
