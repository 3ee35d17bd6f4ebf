"""Decode once: images become fixed-size letterboxed arrays, cached in memory and on disk.

Every epoch and every fold reads from the prepared array; a 2,660-px JPEG is decoded once per
machine for a given preprocessing setting. The disk cache is keyed by the sha256 of the file's
bytes plus the settings, so renaming a file keeps its cache entry and editing it does not.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from osteoscan.data.decode import (
    DEFAULT_MAX_PIXELS,
    ImageFileError,
    read_error_reason,
    read_image,
)
from osteoscan.files import atomic_path, sha256_file

log = logging.getLogger(__name__)

CONTRACT_VERSION = 1  # bump when decoding or resizing changes, to invalidate disk caches
# Worker processes for decoding and for the audit when the caller gives none: every core, at most 4.
DEFAULT_WORKERS = min(os.cpu_count() or 1, 4)


def default_cache_dir() -> Path:
    return Path(os.environ.get("OSTEOSCAN_CACHE", Path.home() / ".cache" / "osteoscan")) / "pixels"


def letterbox(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize so the longer side is ``size`` (antialiased), then pad with black to size x size.

    The aspect ratio is kept: a narrow knee is padded, never stretched.
    """
    height, width = pixels.shape
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = Image.fromarray(pixels.astype(np.float32), mode="F").resize(
        (new_w, new_h), Image.Resampling.BILINEAR
    )
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = np.clip(np.asarray(resized), 0.0, 1.0)
    return out


@dataclass(frozen=True)
class PreparedImages:
    """Letterboxed pixels for the records that decoded, and the problems of those that did not.

    ``pixels[i]`` belongs to ``indices[i]``, an index into the records passed to :func:`prepare`.
    ``problems`` holds (index, reason); the reason does not repeat the path, so
    ``Problem(str(paths[index]), reason)`` names the file once. ``pixels`` is float16 to halve
    the memory: compute statistics on it in float32 (``pixels.std(dtype=np.float32)``), as a
    float16 sum overflows above 65,504.
    """

    pixels: np.ndarray  # (N, size, size) float16 in [0, 1]
    indices: list[int]
    content_hashes: list[str]
    problems: list[tuple[int, str]]


def _prepare_one(args: tuple[int, str, int, str | None, int]) -> tuple[int, object, str]:
    index, path_str, size, cache_dir, max_pixels = args
    path = Path(path_str)
    try:
        sha = sha256_file(path)
    except OSError as exc:
        return index, read_error_reason(exc), ""
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / sha[:2] / f"{sha}-s{size}-v{CONTRACT_VERSION}.npy"
        if cache_file.is_file():
            try:
                return index, np.load(cache_file, allow_pickle=False), sha
            except (OSError, ValueError):
                log.warning("ignoring unreadable cache entry %s", cache_file)
    try:
        boxed = letterbox(read_image(path, max_pixels), size).astype(np.float16)
    except ImageFileError as exc:
        return index, exc.reason, sha
    if cache_file is not None:
        _save_cache_entry(cache_file, boxed)
    return index, boxed, sha


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
        self.entries: dict[tuple, tuple[np.ndarray, str]] = {}
        self.nbytes = 0

    @staticmethod
    def key(path: Path, size: int) -> tuple | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return (str(path), stat.st_mtime_ns, stat.st_size, size)

    def get(self, key: tuple | None) -> tuple[np.ndarray, str] | None:
        return None if key is None else self.entries.get(key)

    def put(self, key: tuple | None, array: np.ndarray, sha: str) -> None:
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
) -> PreparedImages:
    """Decode and letterbox every path once (in parallel), using and filling the caches."""
    workers = workers if workers is not None else DEFAULT_WORKERS
    cache = str(cache_dir) if cache_dir is not None else None
    keys = [_MEMORY.key(Path(p), size) for p in paths]
    results = []
    jobs = []
    for i, (path, key) in enumerate(zip(paths, keys, strict=True)):
        hit = _MEMORY.get(key)
        if hit is not None:
            results.append((i, *hit))
        else:
            jobs.append((i, str(path), size, cache, max_pixels))
    if workers > 1 and len(jobs) >= 32:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            decoded = pool.map(_prepare_one, jobs, chunksize=8)
    else:
        decoded = [_prepare_one(job) for job in jobs]
    for index, outcome, sha in decoded:
        if not isinstance(outcome, str):
            _MEMORY.put(keys[index], outcome, sha)
    pixels, indices, hashes, problems = [], [], [], []
    for index, outcome, sha in sorted(results + decoded, key=lambda r: r[0]):
        if isinstance(outcome, str):
            problems.append((index, outcome))
        else:
            pixels.append(outcome)
            indices.append(index)
            hashes.append(sha)
    stacked = np.stack(pixels) if pixels else np.zeros((0, size, size), dtype=np.float16)
    return PreparedImages(stacked, indices, hashes, problems)
