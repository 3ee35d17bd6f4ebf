"""Decode each file once and keep only what the audit needs: hashes, metadata, a thumbnail.

A :class:`Fingerprint` holds a hash of the decoded pixels (so the same image saved twice under
other names or formats is caught), what the file says about itself (format, colour mode, bit
depth, size), border statistics for the shortcut check, a 128-px thumbnail for near-duplicate
verification and the report, and small embeddings for finding near-duplicate candidates. Files
are fingerprinted in a process pool and streamed, so full images are never all in memory. With a
cache folder, fingerprints are stored under the sha256 of the file's bytes, so a second audit
(or training after an audit) decodes nothing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from osteoscan.audit.align import DETAIL_SIDE
from osteoscan.data.decode import (
    DEFAULT_MAX_PIXELS,
    ImageFileError,
    read_error_reason,
    read_image_with_info,
)
from osteoscan.data.pixels import DEFAULT_WORKERS
from osteoscan.files import atomic_path, sha256_file

log = logging.getLogger(__name__)

FINGERPRINT_VERSION = 3  # bump when anything below changes, to invalidate cached fingerprints
THUMBNAIL_SIDE = DETAIL_SIDE  # the thumbnail is what near duplicates are verified on
EMBEDDING_SIDE = 12
EMBEDDING_SPREAD = 1.2  # the second embedding spans this many radii of gyration around the centroid
BORDER_FRACTION = 0.05
DARK, BRIGHT = 0.05, 0.95
_SERIAL_BELOW = 16  # fewer files than this are not worth starting worker processes


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """Everything the audit keeps from one file. ``error`` says why it could not be read (without
    repeating the path)."""

    path: str
    file_size: int = 0
    sha256: str | None = None  # of the file bytes; only computed when fingerprints are cached
    error: str | None = None
    pixel_hash: str | None = None
    format: str = ""
    mode: str = ""
    bit_depth: int = 0
    width: int = 0
    height: int = 0
    border_mean: float = 0.0
    border_std: float = 0.0
    border_dark: float = 0.0  # fraction of border pixels that are near black
    border_bright: float = 0.0  # ... near white
    background: float = 0.0  # fraction of the whole image that is near black
    thumbnail: np.ndarray | None = None  # uint16, long side THUMBNAIL_SIDE
    embeddings: np.ndarray | None = None  # (2, EMBEDDING_SIDE**2) float32: frame, content

    @property
    def ok(self) -> bool:
        return self.error is None

    def thumbnail_float(self) -> np.ndarray:
        return self.thumbnail.astype(np.float32) / 65535.0

    def preview_png(self) -> bytes:
        """The thumbnail as an 8-bit PNG, for the HTML report."""
        buffer = io.BytesIO()
        Image.fromarray((self.thumbnail >> 8).astype(np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()


def fingerprint_files(
    paths: Sequence[Path],
    cache_dir: Path | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[Fingerprint]:
    """Fingerprint every path, in order; unreadable files get a Fingerprint with ``error`` set."""
    workers = workers if workers is not None else DEFAULT_WORKERS
    cache = str(cache_root(cache_dir)) if cache_dir is not None else None
    jobs = [(str(p), cache, max_pixels) for p in paths]
    if workers <= 1 or len(jobs) < _SERIAL_BELOW:
        return list(map(_fingerprint_job, jobs))
    chunksize = max(1, min(16, len(jobs) // (workers * 8)))
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(_fingerprint_job, jobs, chunksize=chunksize)


def cache_root(cache_dir: Path) -> Path:
    """Where this version of the audit keeps its entries inside a cache folder."""
    return Path(cache_dir) / f"audit-v{FINGERPRINT_VERSION}"


def _fingerprint_job(job: tuple[str, str | None, int]) -> Fingerprint:
    path_str, cache, max_pixels = job
    path = Path(path_str)
    if cache is None:  # the file hash only serves as a cache key
        return _fresh(path, None, max_pixels)
    try:
        sha = sha256_file(path)
    except OSError as exc:
        return Fingerprint(path_str, error=read_error_reason(exc))
    cache_file = Path(cache) / sha[:2] / f"{sha}.npz"
    cached = _load(cache_file, path_str) if cache_file.is_file() else None
    if cached is not None:
        return cached
    fingerprint = _fresh(path, sha, max_pixels)
    if fingerprint.ok:
        _save(cache_file, fingerprint)
    return fingerprint


def _fresh(path: Path, sha: str | None, max_pixels: int) -> Fingerprint:
    try:
        return compute_fingerprint(path, sha, max_pixels)
    except ImageFileError as exc:
        size = path.stat().st_size if path.is_file() else 0
        return Fingerprint(str(path), file_size=size, sha256=sha, error=exc.reason)


def compute_fingerprint(
    path: Path, sha: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Fingerprint:
    """Decode ``path`` once and derive every fingerprint field; raises BadImageError."""
    pixels, info = read_image_with_info(path, max_pixels)
    thumbnail = _thumbnail(pixels)
    border = _border(thumbnail)
    return Fingerprint(
        path=str(path),
        file_size=path.stat().st_size,
        sha256=sha,
        pixel_hash=_pixel_hash(pixels, thumbnail),
        format=info.format,
        mode=info.mode,
        bit_depth=info.bit_depth,
        width=info.width,
        height=info.height,
        border_mean=float(border.mean()),
        border_std=float(border.std()),
        border_dark=float((border < DARK).mean()),
        border_bright=float((border > BRIGHT).mean()),
        background=float((thumbnail < DARK).mean()),
        thumbnail=np.round(thumbnail * 65535.0).astype(np.uint16),
        embeddings=_embeddings(thumbnail),
    )


def _pixel_hash(pixels: np.ndarray, thumbnail: np.ndarray) -> str:
    """Equal for identical decoded pixels, whatever the file format or colour mode.

    Hashes the shape, the thumbnail and a CRC-32 of every pixel (a full sha256 of the pixels
    would cost twice as long): two different images share it only if their thumbnails are
    bit-identical and their CRCs collide, a chance of about 1 in 4 billion.
    """
    digest = hashlib.sha256(f"{pixels.shape}".encode())
    digest.update(thumbnail.tobytes())
    digest.update(zlib.crc32(np.ascontiguousarray(pixels, dtype=np.float32).data).to_bytes(4))
    return digest.hexdigest()


def _border(pixels: np.ndarray) -> np.ndarray:
    """The pixels of the outer BORDER_FRACTION frame of an image (here, of its thumbnail)."""
    height, width = pixels.shape
    dy, dx = max(1, int(height * BORDER_FRACTION)), max(1, int(width * BORDER_FRACTION))
    strips = (pixels[:dy], pixels[-dy:], pixels[dy:-dy, :dx], pixels[dy:-dy, -dx:])
    return np.concatenate([s.ravel() for s in strips])


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    """Long side THUMBNAIL_SIDE, antialiased; a cheap integer reduction first for big images."""
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))
    factor = max(pixels.shape) // (2 * THUMBNAIL_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    scale = THUMBNAIL_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _embeddings(thumbnail: np.ndarray) -> np.ndarray:
    """Two coarse views, standardised: the whole frame stretched to a square grid, and a square
    window centred on the image's bright mass and sized by its spread.

    The first survives resizing and re-encoding; the second also survives padding and crops,
    which move the frame but not the anatomy.
    """
    frame = Image.fromarray(thumbnail).resize((EMBEDDING_SIDE,) * 2, Image.Resampling.BOX)
    views = [np.asarray(frame, dtype=np.float32).ravel(), _content_window(thumbnail).ravel()]
    return np.stack([(v - v.mean()) / (v.std() + 1e-6) for v in views])


def _content_window(thumbnail: np.ndarray) -> np.ndarray:
    """EMBEDDING_SIDE^2 samples of a square around the centroid of the brighter-than-median
    pixels (the anatomy; dark padding weighs nothing), EMBEDDING_SPREAD radii of gyration wide."""
    image = Image.fromarray(thumbnail)
    scale = 48 / max(image.size)
    small = image.resize(
        (max(4, round(image.width * scale)), max(4, round(image.height * scale))),
        Image.Resampling.BOX,
    )
    values = np.asarray(small, dtype=np.float64)
    weight = np.clip(values - np.median(values), 0, None)
    total = weight.sum() + 1e-12
    ys, xs = np.indices(values.shape) + 0.5
    cx, cy = (weight * xs).sum() / total, (weight * ys).sum() / total
    radius = np.sqrt((weight * ((xs - cx) ** 2 + (ys - cy) ** 2)).sum() / total)
    half = max(EMBEDDING_SPREAD * radius, 1.0)
    step = 2 * half / EMBEDDING_SIDE
    window = small.transform(
        (EMBEDDING_SIDE, EMBEDDING_SIDE),
        Image.Transform.AFFINE,
        (step, 0, cx - half, 0, step, cy - half),
        Image.Resampling.BILINEAR,
        fillcolor=0.0,
    )
    return np.asarray(window, dtype=np.float32)


_SCALARS = ("file_size", "bit_depth", "width", "height")
_FLOATS = ("border_mean", "border_std", "border_dark", "border_bright", "background")
_STRINGS = ("sha256", "pixel_hash", "format", "mode")


def _save(target: Path, fp: Fingerprint) -> None:
    """Write the fingerprint (minus its path); a failed write costs a decode next time."""
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                thumbnail=fp.thumbnail,
                embeddings=fp.embeddings,
                **{name: np.array(getattr(fp, name)) for name in _SCALARS + _FLOATS + _STRINGS},
            )
    except OSError as exc:
        log.warning("could not write audit cache entry %s (%s)", target, exc)


def _load(source: Path, path: str) -> Fingerprint | None:
    try:
        with np.load(source, allow_pickle=False) as data:
            return Fingerprint(
                path=path,
                thumbnail=data["thumbnail"],
                embeddings=data["embeddings"],
                **{name: int(data[name]) for name in _SCALARS},
                **{name: float(data[name]) for name in _FLOATS},
                **{name: str(data[name]) for name in _STRINGS},
            )
    except (OSError, KeyError, ValueError) as exc:
        log.warning("ignoring unreadable audit cache entry %s (%s)", source, exc)
        return None
