"""Read any supported image file into the one intensity contract every later step relies on.

The contract: a 2-D ``float32`` array in ``[0, 1]``, one channel, displayed orientation
(EXIF honoured), where larger means brighter as a radiologist would view it (bone bright).
DICOM MONOCHROME1 is inverted, rescale slope/intercept and the VOI LUT or window are applied,
and values are scaled by the true bit depth (8, 16 bit PNG; BitsStored for DICOM).
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from osteoscan.errors import BadImageError

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom")
SUPPORTED_SUFFIXES = RASTER_SUFFIXES + DICOM_SUFFIXES

MIN_SIDE = 32
FLOAT_BITS = 32  # ImageInfo.bit_depth of a floating-point raster
_PERMISSION_DENIED = (
    "cannot read file: permission denied; give read access (chmod u+r) or remove it"
)
DEFAULT_MAX_PIXELS = (
    80_000_000  # about 9000 x 9000; larger files are refused as decompression bombs
)


class ImageFileError(BadImageError):
    """A file that cannot be used as an image. ``str()`` is ``"<path>: <reason>"``; ``reason``
    alone says what is wrong and what to do, for lists that already name the file."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


# each 8-bit grey level v as its contract value, float32 v / 255 (Pillow's L -> F lookup table)
_GRAY_LEVELS = (np.arange(256, dtype=np.float32) / np.float32(255.0)).tolist()


class Pixels:
    """One decoded image in the intensity contract, kept in the form its decoder made: an
    8-bit grey Pillow image (8-bit JPEG, PNG, TIFF, BMP) or a float32 array (16-bit, float,
    DICOM). :attr:`array` is the contract's 2-D float32 array, made once when first asked for;
    :meth:`float_image` gives the same values as a Pillow 'F' image, what the letterbox resizes.
    So letterboxing an 8-bit image never makes its full-size array: one lookup-table pass in
    Pillow instead of a float conversion plus a copy into Pillow (``benchmarks/decode_speed.py``),
    and a prepared image waiting for the model holds 1 byte per pixel instead of 4."""

    def __init__(self, *, array: np.ndarray | None = None, gray: Image.Image | None = None):
        if (array is None) == (gray is None) or (gray is not None and gray.mode != "L"):
            raise ValueError("Pixels holds either a float32 array or an 8-bit 'L' image")
        self._gray = gray
        self._array = array

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        if self._gray is not None:
            return self._gray.height, self._gray.width
        return int(self._array.shape[0]), int(self._array.shape[1])

    @property
    def array(self) -> np.ndarray:
        """The 2-D float32 contract array."""
        if self._array is None:
            pixels = np.asarray(self._gray, dtype=np.float32)
            pixels /= 255.0  # in place: the same values as "/ 255.0" without a second copy
            self._array = pixels
        return self._array

    def float_image(self) -> Image.Image:
        """A new Pillow 'F' image of :attr:`array`'s values (bit for bit)."""
        if self._gray is not None:
            return self._gray.point(_GRAY_LEVELS, "F")
        return Image.fromarray(np.asarray(self._array, dtype=np.float32), mode="F")


@dataclass(frozen=True)
class ImageInfo:
    """What a file says about itself before and while decoding (used by the audit)."""

    format: str
    mode: str
    bit_depth: int
    width: int
    height: int


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES or _has_dicom_magic(path)


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to the intensity contract (see module docstring)."""
    return decode_with_info(path, max_pixels)[0].array


def read_image_with_info(
    path: Path, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, ImageInfo]:
    pixels, info = decode_with_info(path, max_pixels)
    return pixels.array, info


def decode(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Pixels:
    """Decode ``path`` to the intensity contract, as :class:`Pixels`."""
    return decode_with_info(path, max_pixels)[0]


def decode_with_info(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Pixels, ImageInfo]:
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(path, read_error_reason(FileNotFoundError()))
    if path.stat().st_size == 0:
        raise ImageFileError(path, "file is empty (0 bytes); re-export or remove it")
    if path.suffix.lower() in DICOM_SUFFIXES or _has_dicom_magic(path):
        pixels, info = _read_dicom(path, max_pixels)
    elif path.suffix.lower() in RASTER_SUFFIXES:
        pixels, info = _read_raster(path, max_pixels)
    else:
        raise ImageFileError(path, unsupported_reason(path))
    return _checked(path, pixels, info), info


def read_image_bytes(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image held in memory (an upload) to the intensity contract; ``name`` is used
    in messages only. DICOM is recognised by its 'DICM' marker, anything else goes to Pillow."""
    return decode_bytes(data, name, max_pixels).array


def decode_bytes(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Pixels:
    """:func:`read_image_bytes`, as :class:`Pixels`."""
    path = Path(name)
    if not data:
        raise ImageFileError(path, "file is empty (0 bytes); re-export or remove it")
    source = io.BytesIO(data)
    if data[128:132] == b"DICM":
        pixels, info = _read_dicom(path, max_pixels, source)
    else:
        pixels, info = _read_raster(path, max_pixels, source)
    return _checked(path, pixels, info)


def _checked(path: Path, pixels: Pixels, info: ImageInfo) -> Pixels:
    height, width = pixels.shape
    if min(height, width) < MIN_SIDE:
        raise ImageFileError(
            path,
            f"image is only {width}x{height} px; at least {MIN_SIDE} px per "
            "side is needed: use the full-size image or remove it",
        )
    # integer rasters (8 and 16 bit) are finite by construction; float TIFFs and DICOM may not be
    may_be_non_finite = info.format == "DICOM" or info.bit_depth == FLOAT_BITS
    if may_be_non_finite and not np.isfinite(pixels.array).all():
        raise ImageFileError(path, "image contains NaN or infinite values; re-export or remove it")
    return pixels


def read_error_reason(exc: OSError) -> str:
    """Why a file could not be read (for the file's entry in a list of skipped files)."""
    if isinstance(exc, FileNotFoundError):
        return "file not found; check the path or remove the entry"
    if isinstance(exc, PermissionError):
        return _PERMISSION_DENIED
    return f"cannot read file ({exc.strerror or exc}); check the disk or copy the file again"


def unsupported_reason(path: Path) -> str:
    """Why a file of this type is skipped, and what to do."""
    return f"unsupported file type {path.suffix!r}; convert it to one of {', '.join(SUPPORTED_SUFFIXES)}"


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _check_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageFileError(
            path,
            f"{width}x{height} px exceeds the limit of {max_pixels:,} pixels (possible "
            "decompression bomb); downsize it below the limit or remove it",
        )


def _read_raster(
    path: Path, max_pixels: int, source: BinaryIO | None = None
) -> tuple[Pixels, ImageInfo]:
    """Decode ``source`` (default: the file at ``path``); ``path`` names it in messages."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if source is None else source) as img:
                _check_size(path, img.width, img.height, max_pixels)
                fmt = img.format or path.suffix.lstrip(".").upper()
                mode = img.mode
                if img.format == "JPEG" and mode in ("RGB", "YCbCr"):
                    img.draft("L", None)  # decode luma only: same gray, a third of the work
                img.load()
                ImageOps.exif_transpose(img, in_place=True)  # in place: no copy when upright
                pixels, bits = _to_gray(img)
    except ImageFileError:
        raise
    except PermissionError:
        raise ImageFileError(path, _PERMISSION_DENIED) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageFileError(
            path,
            f"refused by Pillow's pixel limit ({exc}); possible decompression bomb; downsize it "
            "or remove it",
        ) from exc
    except UnidentifiedImageError as exc:  # its message repeats the path
        raise ImageFileError(
            path, "not a readable image (Pillow cannot identify its format); re-export it as PNG"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageFileError(
            path, f"image is corrupt or truncated ({exc}); re-export it or remove it"
        ) from exc
    height, width = pixels.shape
    info = ImageInfo(fmt, mode, bits, width, height)
    return pixels, info


def _to_gray(img: Image.Image) -> tuple[Pixels, int]:
    """One channel in [0, 1], scaled by the mode's bit depth. Returns (pixels, bit_depth)."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return Pixels(array=np.asarray(img, dtype=np.float32) / 65535.0), 16
    if mode == "I":
        arr = np.asarray(img, dtype=np.float32)
        bits = 16 if arr.max(initial=0) > 255 else 8
        return Pixels(array=np.clip(arr / (2**bits - 1), 0.0, 1.0)), bits
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        return Pixels(array=_min_max(arr)), FLOAT_BITS
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    # a copy of the file's own image: closing the file frees that one's pixels
    gray = img.copy() if mode == "L" else img.convert("RGB").convert("L")
    return Pixels(gray=gray), 8


def _min_max(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def _read_dicom(
    path: Path, max_pixels: int, source: BinaryIO | None = None
) -> tuple[Pixels, ImageInfo]:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(path if source is None else source)
    except PermissionError:
        raise ImageFileError(path, _PERMISSION_DENIED) from None
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise ImageFileError(
            path, f"not a readable DICOM file ({exc}); re-export it or remove it"
        ) from exc
    if "PixelData" not in ds:
        raise ImageFileError(path, "DICOM file has no pixel data (no image in it); remove it")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    _check_size(path, cols, rows, max_pixels)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    try:
        raw = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for broken pixel data
        raise ImageFileError(
            path,
            f"cannot decode DICOM pixel data ({exc}); compressed transfer syntaxes need "
            "pylibjpeg or gdcm installed, or re-export it uncompressed",
        ) from exc
    if raw.ndim != 2:
        raise ImageFileError(
            path,
            f"DICOM pixel data has shape {raw.shape}; only single-frame grayscale images are "
            "supported: export one grayscale frame",
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageFileError(
            path,
            f"DICOM PhotometricInterpretation {photometric} is not grayscale; export it as "
            "MONOCHROME2",
        )
    values = apply_modality_lut(raw, ds).astype(np.float64)
    if "VOILUTSequence" in ds:
        pixels = _voi_lut(values, ds.VOILUTSequence[0])
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        pixels = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
    else:
        pixels = _robust_range(values)
    if photometric == "MONOCHROME1":
        pixels = 1.0 - pixels
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    info = ImageInfo("DICOM", photometric, bits, int(raw.shape[1]), int(raw.shape[0]))
    return Pixels(array=pixels.astype(np.float32)), info


def _first(value) -> float:
    """WindowCenter/Width may be multi-valued; the first pair is the default view."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM linear window (PS3.3 C.11.2.1.2) mapped to [0, 1]."""
    width = max(width, 1.0)
    return np.clip((values - (center - 0.5)) / (width - 1.0 if width > 1 else 1.0) + 0.5, 0, 1)


def _voi_lut(values: np.ndarray, item) -> np.ndarray:
    """The first VOI LUT (PS3.3 C.11.2.1.1) mapped to [0, 1] by its nominal bit depth.

    Done here rather than by pydicom, whose lookup wraps indices above 255 for 8-bit LUTs.
    """
    entries, first_mapped, lut_bits = (int(v) for v in item.LUTDescriptor)
    data = item.LUTData
    if isinstance(data, bytes):  # OW: 16-bit little-endian words
        lut = np.frombuffer(data, dtype="<u2").astype(np.float64)
    else:
        lut = np.asarray(data, dtype=np.float64).ravel()
    index = np.clip(np.rint(values) - first_mapped, 0, (entries or 2**16) - 1).astype(np.int64)
    return np.clip(lut[index] / float(2**lut_bits - 1), 0.0, 1.0)


def _robust_range(values: np.ndarray) -> np.ndarray:
    """No window given: scale by the image's own 0.5-99.5 percentiles."""
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        return _min_max(values.astype(np.float32))
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)
