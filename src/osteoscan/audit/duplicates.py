"""Duplicate groups: identical decoded pixels (exact) and the same radiograph edited (near).

Exact duplicates share a hash of their decoded pixels, so a PNG saved again as TIFF, or stored
as RGB instead of grey, is caught whatever its name. Near duplicates are searched among one
representative per exact group (candidates from :mod:`osteoscan.audit.candidates`, each checked
by :mod:`osteoscan.audit.verify`), and a near group lists every exact copy of its members too,
so the two groupings agree.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from osteoscan.audit.candidates import candidate_pairs
from osteoscan.audit.fingerprint import Fingerprint, cache_root, fingerprint_files
from osteoscan.audit.pair_cache import load_scores, save_scores
from osteoscan.audit.verify import NEAR_THRESHOLD, verify_pairs
from osteoscan.data.pixels import DEFAULT_WORKERS
from osteoscan.data.splits import join_groups

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DuplicateGroup:
    """Indices of files that hold the same image.

    ``similarity`` is 1.0 for exact groups; for near groups it is the weakest of the verified
    links that join the group, and ``pairs`` lists those links as (i, j, similarity).
    """

    kind: str  # "exact" or "near"
    members: tuple[int, ...]
    similarity: float
    pairs: tuple[tuple[int, int, float], ...] = ()


def find_duplicate_groups(
    paths: Sequence[Path], cache_dir: Path | None = None, workers: int | None = None
) -> list[DuplicateGroup]:
    """Exact and near-duplicate groups (each >= 2 members) among ``paths``.

    Unreadable files are ignored. With ``cache_dir``, fingerprints and verification scores are
    cached under the files' sha256, so calling this again (from training after an audit) costs
    almost nothing.
    """
    return group_duplicates(fingerprint_files(paths, cache_dir, workers), workers, cache_dir)


def group_duplicates(
    fingerprints: Sequence[Fingerprint],
    workers: int | None = None,
    cache_dir: Path | None = None,
) -> list[DuplicateGroup]:
    """Exact groups first, then near groups, each sorted by first member."""
    exact = exact_groups(fingerprints)
    return exact + near_groups(fingerprints, exact, workers, cache_dir)


def exact_groups(fingerprints: Sequence[Fingerprint]) -> list[DuplicateGroup]:
    by_hash: dict[str, list[int]] = defaultdict(list)
    for index, fp in enumerate(fingerprints):
        if fp.ok:
            by_hash[fp.pixel_hash].append(index)
    groups = [DuplicateGroup("exact", tuple(m), 1.0) for m in by_hash.values() if len(m) > 1]
    return sorted(groups, key=lambda g: g.members)


def near_groups(
    fingerprints: Sequence[Fingerprint],
    exact: Sequence[DuplicateGroup],
    workers: int | None = None,
    cache_dir: Path | None = None,
) -> list[DuplicateGroup]:
    """Near-duplicate groups among readable files, each extended by its members' exact copies."""
    copies = {g.members[0]: g.members for g in exact}
    hidden = {m for g in exact for m in g.members[1:]}
    representatives = [i for i, fp in enumerate(fingerprints) if fp.ok and i not in hidden]
    if len(representatives) < 2:
        return []
    embeddings = np.stack([fingerprints[i].embeddings for i in representatives])
    candidates = candidate_pairs(embeddings)
    workers = workers if workers is not None else DEFAULT_WORKERS
    scores = _verify([fingerprints[i] for i in representatives], candidates, workers, cache_dir)
    log.info(
        "near duplicates: %d candidate pairs among %d images, %d above %.2f",
        len(candidates),
        len(representatives),
        int((scores >= NEAR_THRESHOLD).sum()),
        NEAR_THRESHOLD,
    )
    links = [
        (representatives[i], representatives[j], float(s))
        for (i, j), s in zip(candidates.tolist(), scores, strict=True)
        if s >= NEAR_THRESHOLD
    ]
    roots = join_groups(len(fingerprints), [(a, b) for a, b, _ in links])
    components: dict[int, set[int]] = defaultdict(set)
    for a, b, _ in links:
        components[roots[a]].update((a, b))
    groups = []
    for component in components.values():
        members = sorted(m for r in component for m in copies.get(r, (r,)))
        inside = tuple(link for link in links if link[0] in component)
        groups.append(DuplicateGroup("near", tuple(members), min(s for *_, s in inside), inside))
    return sorted(groups, key=lambda g: g.members)


def _verify(
    fingerprints: Sequence[Fingerprint],
    candidates: np.ndarray,
    workers: int,
    cache_dir: Path | None,
) -> np.ndarray:
    """Verification score of each candidate pair, from the cache where it has one."""
    thumbnails = [fp.thumbnail for fp in fingerprints]
    if cache_dir is None:
        return verify_pairs(thumbnails, candidates, workers)
    keys = [(fingerprints[i].sha256, fingerprints[j].sha256) for i, j in candidates.tolist()]
    scores = load_scores(cache_root(cache_dir), keys)
    todo = np.isnan(scores)
    if todo.any():
        scores[todo] = verify_pairs(thumbnails, candidates[todo], workers)
        save_scores(
            cache_root(cache_dir), [k for k, t in zip(keys, todo, strict=True) if t], scores[todo]
        )
    return scores
