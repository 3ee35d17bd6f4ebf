"""Images for the page, as base64 PNG: the radiograph as the model read it (browsers cannot show
DICOM) and the Grad-CAM map as a coloured, semi-transparent layer of the same size to lay on it."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def _png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _display_size(shape: tuple[int, ...], max_side: int) -> tuple[int, int]:
    height, width = shape[:2]
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


def radiograph_png(pixels: np.ndarray, max_side: int) -> str:
    """Contract pixels (2-D, [0, 1]) as an 8-bit gray PNG, at most ``max_side`` px a side."""
    image = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8), mode="L")
    return _png_base64(
        image.resize(_display_size(pixels.shape, max_side), Image.Resampling.BILINEAR)
    )


def heatmap_png(cam: np.ndarray, max_side: int) -> str:
    """A [0, 1] Grad-CAM map in the CLI overlay's colours and opacity, as an RGBA PNG."""
    from matplotlib import colormaps

    from osteoscan.explain.overlay import CAM_ALPHA, COLOUR_MAP

    rgba = colormaps[COLOUR_MAP](np.clip(cam, 0, 1))
    rgba[..., 3] = CAM_ALPHA
    image = Image.fromarray(np.round(rgba * 255).astype(np.uint8), mode="RGBA")
    return _png_base64(image.resize(_display_size(cam.shape, max_side), Image.Resampling.BILINEAR))
