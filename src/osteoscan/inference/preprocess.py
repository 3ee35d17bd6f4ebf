"""The one preprocessing path of every backend, in numpy and Pillow (no torch).

decode (the intensity contract) -> letterbox to the bundle's ``image_size`` (or, for a bundle
trained on knee crops, find the knees and crop each to ``image_size``) -> replicate to the
model's channels, subtract mean, divide by std. Everything is read from the bundle's
:class:`~osteoscan.metadata.InputSpec` and ROI settings. :class:`Letterbox` (and each crop's
:class:`~osteoscan.roi.Crop`) records where the pixels came from, so that a heat-map can be
mapped back onto the original pixels exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from osteoscan.data.decode import DEFAULT_MAX_PIXELS, Pixels, decode, decode_bytes
from osteoscan.data.pixels import letterbox
from osteoscan.errors import BadImageError
from osteoscan.metadata import InputSpec
from osteoscan.roi.batch import pixel_spacing
from osteoscan.roi.config import RoiConfig
from osteoscan.roi.crop import Crop, crop_knees
from osteoscan.roi.localise import find_knees


@dataclass(frozen=True)
class Letterbox:
    """Where an ``height`` x ``width`` image lies inside the ``size`` x ``size`` network input.

    Mirrors :func:`osteoscan.data.pixels.letterbox` (a test holds the two together).
    """

    height: int
    width: int
    size: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, left, new_height, new_width) of the resized image inside the square."""
        scale = self.size / max(self.height, self.width)
        new_w, new_h = max(1, round(self.width * scale)), max(1, round(self.height * scale))
        return (self.size - new_h) // 2, (self.size - new_w) // 2, new_h, new_w

    def to_original(self, square: np.ndarray) -> np.ndarray:
        """A ``size`` x ``size`` map cropped to the image and resized to ``height`` x ``width``."""
        top, left, new_h, new_w = self.box
        inside = np.ascontiguousarray(square[top : top + new_h, left : left + new_w], np.float32)
        resized = Image.fromarray(inside, mode="F").resize(
            (self.width, self.height), Image.Resampling.BILINEAR
        )
        return np.asarray(resized, dtype=np.float32)


@dataclass(frozen=True)
class PreparedImage:
    """One decoded image: the decoder's pixels, the letterboxed square and their geometry, and
    for a knee-ROI bundle the crop of each knee (image left to right), which the network sees."""

    decoded: Pixels
    square: np.ndarray
    geometry: Letterbox
    crops: tuple[Crop, ...] = ()

    @property
    def original(self) -> np.ndarray:
        """The full-size contract pixels (made when first asked for: a heat-map or a preview
        needs them, the prediction does not)."""
        return self.decoded.array

    @property
    def inputs(self) -> list[np.ndarray]:
        """The [0, 1] squares the network is run on: one per knee crop, else the letterbox."""
        return [crop.pixels for crop in self.crops] if self.crops else [self.square]


class Preprocessor:
    """Turn files into normalised network input, exactly as the bundle's model was trained."""

    def __init__(
        self, spec: InputSpec, max_pixels: int = DEFAULT_MAX_PIXELS, roi: RoiConfig | None = None
    ) -> None:
        self.spec = spec
        self.max_pixels = max_pixels
        self.roi = roi
        self._mean = np.asarray(spec.mean, np.float32)
        self._std = np.asarray(spec.std, np.float32)

    def load(self, path: Path | str) -> PreparedImage:
        """Decode and letterbox (or crop the knees of) ``path``; raises BadImageError naming the
        file, also when a knee-ROI bundle finds no knee in it."""
        path = Path(path)
        decoded = decode(path, self.max_pixels)
        spacing = pixel_spacing(path) if self.roi is not None else None
        return self.from_pixels(decoded, spacing, source=str(path))

    def load_bytes(self, data: bytes, name: str) -> PreparedImage:
        """Decode and letterbox an image held in memory (an upload; nothing touches the disk);
        ``name`` is used in messages. Raises BadImageError."""
        decoded = decode_bytes(data, name, self.max_pixels)
        spacing = pixel_spacing(data) if self.roi is not None else None
        return self.from_pixels(decoded, spacing, source=name)

    def from_pixels(
        self,
        decoded: np.ndarray | Pixels,
        pixel_spacing: tuple[float, float] | None = None,
        source: str = "image",
    ) -> PreparedImage:
        """Letterbox already-decoded contract pixels (2-D float in [0, 1], or the decoder's
        :class:`Pixels`); with the bundle's knee ROI also crop each knee (``pixel_spacing``:
        DICOM row, column mm, if known)."""
        if not isinstance(decoded, Pixels):
            decoded = Pixels(array=np.asarray(decoded, dtype=np.float32))
        size = self.spec.image_size
        geometry = Letterbox(*decoded.shape, size)
        crops: tuple[Crop, ...] = ()
        if self.roi is not None:
            original = decoded.array
            detection = find_knees(original, self.roi, pixel_spacing)
            if not detection.found:
                raise BadImageError(
                    f"{source}: no knee found ({detection.reason}); this model screens knee "
                    "crops: give an AP knee radiograph (check it with 'osteoscan roi')"
                )
            crops = tuple(crop_knees(original, detection, self.roi, size))
        return PreparedImage(decoded, letterbox(decoded, size), geometry, crops)

    def normalise(
        self, squares: Sequence[np.ndarray] | np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """(N, S, S) letterboxed [0, 1] pixels -> (N, C, S, S) float32 network input, written
        into ``out`` when given (e.g. an image's rows of a batch being assembled).

        Written channel by channel into one output array: the same values as broadcasting
        ``(x - mean) / std``, without its two batch-sized temporaries (each freshly page-faulted
        per batch under glibc's default malloc: ``benchmarks/decode_speed.py``)."""
        batch = np.asarray(squares, dtype=np.float32)
        shape = (batch.shape[0], self.spec.in_chans, *batch.shape[1:])
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32:
            raise ValueError(f"normalise: out is {out.dtype} {out.shape}, needs float32 {shape}")
        for channel, (mean, std) in enumerate(zip(self._mean, self._std, strict=True)):
            np.subtract(batch, mean, out=out[:, channel])
            np.divide(out[:, channel], std, out=out[:, channel])
        return out
