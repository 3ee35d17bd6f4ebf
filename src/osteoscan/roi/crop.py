"""Cut the standard square around each detected joint, and map crop pixels back to the source."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from osteoscan.roi.config import RoiConfig
from osteoscan.roi.localise import Knee, KneeDetection


@dataclass(frozen=True)
class Crop:
    """One knee's ROI: ``pixels`` (size x size float32, [0, 1]) cut from the source square
    ``left, top, side`` (source pixels, pixel i's centre at i + 0.5 on this edge grid; it may
    reach past the image, where the crop is black), flipped left-right when ``mirrored``."""

    pixels: np.ndarray
    knee: Knee
    name: str  # "right" / "left", else "knee 1", "knee 2"; "knee" for a single unsided knee
    left: float
    top: float
    side: float
    mirrored: bool

    def to_source(self, u: float, v: float) -> tuple[float, float]:
        """Source (x, y) on the edge grid of a crop position (u, v) on the same grid."""
        size = self.pixels.shape[1]
        if self.mirrored:
            u = size - u
        scale = self.side / size
        return self.left + u * scale, self.top + v * scale

    def paste_back(self, crop_map: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
        """A map over the crop (any resolution, e.g. Grad-CAM) laid onto a zero image of the
        source's shape at the crop's place; NaN where the crop does not cover the source."""
        height, width = image_shape
        out = np.full((height, width), np.nan, dtype=np.float32)
        heat = np.asarray(crop_map, dtype=np.float32)
        if self.mirrored:
            heat = heat[:, ::-1]
        x0, y0 = max(0, math.floor(self.left)), max(0, math.floor(self.top))
        x1 = min(width, math.ceil(self.left + self.side))
        y1 = min(height, math.ceil(self.top + self.side))
        if x1 <= x0 or y1 <= y0:
            return out
        scale_x, scale_y = heat.shape[1] / self.side, heat.shape[0] / self.side
        extent = (
            (x0 - self.left) * scale_x,
            (y0 - self.top) * scale_y,
            (x1 - self.left) * scale_x,
            (y1 - self.top) * scale_y,
        )
        laid = Image.fromarray(np.ascontiguousarray(heat), mode="F").transform(
            (x1 - x0, y1 - y0), Image.Transform.EXTENT, extent, Image.Resampling.BILINEAR
        )
        centres_x = np.arange(x0, x1) + 0.5
        centres_y = np.arange(y0, y1) + 0.5
        inside = ((centres_y >= self.top) & (centres_y <= self.top + self.side))[:, None] & (
            (centres_x >= self.left) & (centres_x <= self.left + self.side)
        )[None, :]
        out[y0:y1, x0:x1] = np.where(inside, np.asarray(laid), np.nan)
        return out


def crop_box(knee: Knee, config: RoiConfig) -> tuple[float, float, float]:
    """(left, top, side) of the square ROI: centred on the joint, ``roi_scale`` joint widths."""
    side = config.roi_scale * knee.joint_width
    return knee.centre_x + 0.5 - side / 2, knee.centre_y + 0.5 - side / 2, side


def _names(knees: tuple[Knee, ...]) -> list[str]:
    if len(knees) == 1:
        return [knees[0].side or "knee"]
    return [knee.side or f"knee {index}" for index, knee in enumerate(knees, start=1)]


def crop_knees(
    pixels: np.ndarray, detection: KneeDetection, config: RoiConfig | None = None, size: int = 224
) -> list[Crop]:
    """The ROI of every detected knee, resampled to ``size`` x ``size`` (antialiased)."""
    config = config or RoiConfig()
    height, width = pixels.shape
    crops = []
    for knee, name in zip(detection.knees, _names(detection.knees), strict=True):
        left, top, side = crop_box(knee, config)
        x0, y0 = math.floor(left), math.floor(top)
        x1, y1 = math.ceil(left + side), math.ceil(top + side)
        region = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if sx1 > sx0 and sy1 > sy0:
            region[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = pixels[sy0:sy1, sx0:sx1]
        box = (left - x0, top - y0, left - x0 + side, top - y0 + side)
        image = Image.fromarray(region, mode="F").resize(
            (size, size), Image.Resampling.BILINEAR, box=box
        )
        crop = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        mirrored = config.mirror != "none" and knee.side == config.mirror
        if mirrored:
            crop = crop[:, ::-1].copy()
        crops.append(Crop(crop, knee, name, left, top, side, mirrored))
    return crops
