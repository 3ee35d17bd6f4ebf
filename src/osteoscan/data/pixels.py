"""Decode once: images become fixed-size letterboxed arrays, cached in memory and on disk.

Every epoch and every fold reads from the prepared array; a 2,660-px JPEG is decoded once per
machine for a given preprocessing setting. The disk cache is keyed by the sha256 of the file's
bytes plus the settings, so renaming a file keeps its cache entry and editing it does not.

With a knee ROI (``roi=RoiConfig(...)``) each image becomes one square crop per knee instead
(:mod:`osteoscan.roi`): a bilateral radiograph gives two, an image with no knee found none (a
problem with the reason). Crops, and "no knee found", are cached under the ROI settings too, so
epochs and reruns never localise again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from osteoscan.data.decode import (
    DEFAULT_MAX_PIXELS,
    ImageFileError,
    Pixels,
    decode,
    read_error_reason,
    read_image,
)
from osteoscan.files import atomic_path, sha256_file
from osteoscan.roi.batch import pixel_spacing
from osteoscan.roi.config import RoiConfig
from osteoscan.roi.crop import crop_knees
from osteoscan.roi.localise import find_knees

log = logging.getLogger(__name__)

CONTRACT_VERSION = 1  # bump when decoding or resizing changes, to invalidate disk caches
ROI_VERSION = 1  # bump when knee localisation or cropping changes, to invalidate cached crops
# Worker processes for decoding and for the audit when the caller gives none: every core, at most 4.
DEFAULT_WORKERS = min(os.cpu_count() or 1, 4)


def _default_sigterm() -> None:
    """In a decode worker: SIGTERM kills, whatever handler the forking process had. Leaving the
    pool terminates its workers with SIGTERM; a handler inherited from the caller (Lightning's
    during a fit, or a user's) that does not exit would leave a worker, and the caller, waiting."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def default_cache_dir() -> Path:
    return Path(os.environ.get("OSTEOSCAN_CACHE", Path.home() / ".cache" / "osteoscan")) / "pixels"


def letterbox(pixels: np.ndarray | Pixels, size: int) -> np.ndarray:
    """Resize so the longer side is ``size`` (antialiased), then pad with black to size x size.

    The aspect ratio is kept: a narrow knee is padded, never stretched. ``pixels``: the
    contract's 2-D array, or the decoder's :class:`~osteoscan.data.decode.Pixels` (the same
    result; an 8-bit image is then resized without making its full-size float array).
    """
    if not isinstance(pixels, Pixels):
        pixels = Pixels(array=pixels)
    height, width = pixels.shape
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = pixels.float_image().resize((new_w, new_h), Image.Resampling.BILINEAR)
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    np.clip(np.asarray(resized), 0.0, 1.0, out=out[top : top + new_h, left : left + new_w])
    return out


@dataclass(frozen=True)
class PreparedImages:
    """Letterboxed pixels for the records that decoded, and the problems of those that did not.

    ``pixels[i]`` belongs to ``indices[i]``, an index into the records passed to :func:`prepare`;
    with a knee ROI an index repeats once per knee crop, ``knees[i]`` names the knee ("right",
    "left", "knee 1", "knee 2" or "knee") and ``boxes[i]`` is its square in source pixels
    (left, top, side, mirrored as 0/1); without one ``knees`` and ``boxes`` are empty.
    ``problems`` holds (index, reason); the reason does not repeat the path, so
    ``Problem(str(paths[index]), reason)`` names the file once. ``pixels`` is float16 to halve
    the memory: compute statistics on it in float32 (``pixels.std(dtype=np.float32)``), as a
    float16 sum overflows above 65,504.
    """

    pixels: np.ndarray  # (N, size, size) float16 in [0, 1]
    indices: list[int]
    content_hashes: list[str]
    problems: list[tuple[int, str]]
    knees: list[str] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


@dataclass(frozen=True)
class _Crops:
    """One image's knee crops as cached: (K, size, size) float16, names, (K, 4) boxes; K = 0
    with ``reason`` when no knee was found."""

    pixels: np.ndarray
    names: tuple[str, ...]
    boxes: np.ndarray
    reason: str = ""

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)


def roi_cache_tag(roi: RoiConfig | None) -> str:
    """The part of a cache key that says which ROI settings made an entry ("" for none)."""
    if roi is None:
        return ""
    settings = json.dumps(roi.to_dict(), sort_keys=True).encode()
    return f"-roi{ROI_VERSION}.{hashlib.sha256(settings).hexdigest()[:16]}"


def _cut_knees(path: Path, size: int, roi: RoiConfig, max_pixels: int) -> _Crops:
    pixels = read_image(path, max_pixels)
    detection = find_knees(pixels, roi, pixel_spacing(path))
    if not detection.found:
        empty = np.zeros((0, size, size), dtype=np.float16)
        return _Crops(empty, (), np.zeros((0, 4)), f"no knee found: {detection.reason}")
    crops = crop_knees(pixels, detection, roi, size)
    return _Crops(
        np.stack([c.pixels for c in crops]).astype(np.float16),
        tuple(c.name for c in crops),
        np.array([[c.left, c.top, c.side, float(c.mirrored)] for c in crops]),
    )


def _load_crops(cache_file: Path) -> _Crops:
    with np.load(cache_file, allow_pickle=False) as entry:
        return _Crops(
            entry["pixels"],
            tuple(str(n) for n in entry["names"]),
            entry["boxes"],
            str(entry["reason"]),
        )


def _save_crops(target: Path, crops: _Crops) -> None:
    """Like :func:`_save_cache_entry`, for one image's crops (an .npz without pickles)."""
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                pixels=crops.pixels,
                names=np.array(crops.names, dtype=str),
                boxes=crops.boxes,
                reason=np.array(crops.reason),
            )
    except OSError as exc:
        log.warning("could not write cache entry %s (%s)", target, exc)


def _cache_file(cache_dir: str, sha: str, size: int, roi: RoiConfig | None) -> Path:
    suffix = ".npy" if roi is None else ".npz"
    name = f"{sha}-s{size}{roi_cache_tag(roi)}-v{CONTRACT_VERSION}{suffix}"
    return Path(cache_dir) / sha[:2] / name


def _load_cached(cache_file: Path, roi: RoiConfig | None) -> np.ndarray | _Crops:
    if roi is None:
        return np.load(cache_file, allow_pickle=False)
    return _load_crops(cache_file)


# one file to prepare: (index, path, size, cache dir, pixel limit, ROI, sha256 of its bytes)
_Job = tuple[int, str, int, str | None, int, RoiConfig | None, str]


def _look_up(
    index: int, path: str, size: int, cache_dir: str | None, max_pixels: int, roi: RoiConfig | None
) -> tuple[int, object, str] | _Job:
    """Hash the file and read its disk-cache entry, in this process: the result when it is
    cached (or unreadable), else the job that decodes it."""
    try:
        sha = sha256_file(Path(path))
    except OSError as exc:
        return index, read_error_reason(exc), ""
    if cache_dir is not None:
        cache_file = _cache_file(cache_dir, sha, size, roi)
        if cache_file.is_file():
            try:
                return index, _load_cached(cache_file, roi), sha
            except (OSError, ValueError, KeyError):
                log.warning("ignoring unreadable cache entry %s", cache_file)
    return index, path, size, cache_dir, max_pixels, roi, sha


def _prepare_one(args: _Job) -> tuple[int, object, str]:
    """Decode one file :func:`_look_up` did not find cached, and cache the result."""
    index, path_str, size, cache_dir, max_pixels, roi, sha = args
    path = Path(path_str)
    try:
        if roi is None:
            outcome: np.ndarray | _Crops = letterbox(decode(path, max_pixels), size).astype(
                np.float16
            )
        else:
            outcome = _cut_knees(path, size, roi, max_pixels)
    except ImageFileError as exc:
        return index, exc.reason, sha
    if cache_dir is not None:
        cache_file = _cache_file(cache_dir, sha, size, roi)
        if isinstance(outcome, _Crops):
            _save_crops(cache_file, outcome)
        else:
            _save_cache_entry(cache_file, outcome)
    return index, outcome, sha


def _save_cache_entry(target: Path, array: np.ndarray) -> None:
    """A failed write costs a decode next time, never the run."""
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    except OSError as exc:
        log.warning("could not write cache entry %s (%s)", target, exc)


class _MemoryCache:
    """Prepared images of this process, keyed by (path, mtime, file size, image size), bounded in
    bytes: repeated runs in one session (folds, configurations) skip even the disk cache."""

    def __init__(self, max_bytes: int = 2 << 30) -> None:
        self.max_bytes = max_bytes
        self.entries: dict[tuple, tuple[np.ndarray | _Crops, str]] = {}
        self.nbytes = 0

    @staticmethod
    def key(path: Path, size: int, roi: RoiConfig | None = None) -> tuple | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return (str(path), stat.st_mtime_ns, stat.st_size, size, roi)

    def get(self, key: tuple | None) -> tuple[np.ndarray | _Crops, str] | None:
        return None if key is None else self.entries.get(key)

    def put(self, key: tuple | None, array: np.ndarray | _Crops, sha: str) -> None:
        if key is None or key in self.entries or self.nbytes + array.nbytes > self.max_bytes:
            return
        self.entries[key] = (array, sha)
        self.nbytes += array.nbytes


_MEMORY = _MemoryCache()


def prepare(
    paths: Sequence[Path],
    size: int,
    cache_dir: Path | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    roi: RoiConfig | None = None,
) -> PreparedImages:
    """Decode and letterbox every path once (in parallel), using and filling the caches; with
    ``roi``, crop each knee to ``size`` x ``size`` instead (see :class:`PreparedImages`)."""
    workers = workers if workers is not None else DEFAULT_WORKERS
    cache = str(cache_dir) if cache_dir is not None else None
    keys = [_MEMORY.key(Path(p), size, roi) for p in paths]
    results = []
    jobs = []
    for i, (path, key) in enumerate(zip(paths, keys, strict=True)):
        hit = _MEMORY.get(key)
        if hit is not None:
            results.append((i, *hit))
        else:
            jobs.append(_look_up(i, str(path), size, cache, max_pixels, roi))
    # hashing and cached files are done here; only what must be decoded goes to worker
    # processes, so a warm cache forks none (a fork from a process already running threads,
    # e.g. a second DDP rank, can inherit a held lock and hang)
    decoded = [job for job in jobs if len(job) == 3]
    jobs = [job for job in jobs if len(job) != 3]
    if workers > 1 and len(jobs) >= 32:
        fork = multiprocessing.get_context("fork")
        with fork.Pool(workers, initializer=_default_sigterm) as pool:
            decoded += pool.map(_prepare_one, jobs, chunksize=8)
    else:
        decoded += [_prepare_one(job) for job in jobs]
    for index, outcome, sha in decoded:
        if not isinstance(outcome, str):
            _MEMORY.put(keys[index], outcome, sha)
    pixels, indices, hashes, problems, knees, boxes = [], [], [], [], [], []
    for index, outcome, sha in sorted(results + decoded, key=lambda r: r[0]):
        if isinstance(outcome, str):
            problems.append((index, outcome))
        elif isinstance(outcome, _Crops):
            if outcome.reason:
                problems.append((index, outcome.reason))
            pixels += list(outcome.pixels)
            indices += [index] * len(outcome.names)
            hashes += [sha] * len(outcome.names)
            knees += outcome.names
            boxes += list(outcome.boxes)
        else:
            pixels.append(outcome)
            indices.append(index)
            hashes.append(sha)
    stacked = np.stack(pixels) if pixels else np.zeros((0, size, size), dtype=np.float16)
    placed = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return PreparedImages(stacked, indices, hashes, problems, knees, placed)
