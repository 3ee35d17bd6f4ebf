"""Disk cache of near-duplicate verification scores, keyed by the two files' sha256.

Verifying a candidate pair costs milliseconds, and a dataset has a few candidates per image, so
training after an audit would otherwise redo seconds of work. Each score is stored once, in a
small JSON file named after the smaller of the two hashes; renamed files keep their scores,
edited files get new ones. Writes are atomic (:func:`osteoscan.files.atomic_path`); a lost race
loses a score, never corrupts one.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from osteoscan.files import atomic_path, to_json

log = logging.getLogger(__name__)


def load_scores(root: Path, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Cached score of each (sha, sha) pair, NaN where none is cached."""
    tables: dict[str, dict[str, float]] = {}
    scores = np.full(len(pairs), np.nan)
    for k, (a, b) in enumerate(pairs):
        low, high = sorted((a, b))
        if low not in tables:
            tables[low] = _read(_table_path(root, low))
        scores[k] = tables[low].get(high, np.nan)
    return scores


def save_scores(root: Path, pairs: Sequence[tuple[str, str]], scores: np.ndarray) -> None:
    """Add these scores to the cache (merging with what is there).

    A score that is not a finite number is not stored: it reads back as "not cached" anyway.
    """
    updates: dict[str, dict[str, float]] = defaultdict(dict)
    for (a, b), score in zip(pairs, scores, strict=True):
        if not math.isfinite(score):
            continue
        low, high = sorted((a, b))
        updates[low][high] = float(score)  # JSON keeps every digit of a float
    for low, new in updates.items():
        path = _table_path(root, low)
        table = _read(path)
        if new.items() <= table.items():
            continue
        table.update(new)
        try:  # a cache needs no fsync: a lost entry is only recomputed
            with atomic_path(path) as tmp:
                tmp.write_text(to_json(table))
        except OSError as exc:
            log.warning("could not write audit cache entry %s (%s)", path, exc)


def _table_path(root: Path, sha: str) -> Path:
    return Path(root) / "pairs" / sha[:2] / f"{sha}.json"


def _read(path: Path) -> dict[str, float]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable audit cache entry %s (%s)", path, exc)
        return {}
