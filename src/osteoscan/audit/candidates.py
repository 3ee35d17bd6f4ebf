"""Near-duplicate candidates: each image's few nearest neighbours, found through a KD-tree.

Each image carries two 12x12 embeddings (the whole frame; a window around its anatomy, which
padding and crops do not move). Per view, the embeddings are centred on the dataset mean and
PCA-whitened, so that what all knees share is removed and what tells them apart is weighted up.
A KD-tree over the first INDEX_DIMS whitened components (a lower bound of the full distance)
shortlists SHORTLIST neighbours per image; the closest over all RANK_DIMS components, NEIGHBOURS
per view, become candidates: about 2.5 pairs per image, never all n^2 / 2 (a KD-tree slows down
steeply beyond about 8 dimensions, hence the shortlist). Every candidate is then verified by
:mod:`osteoscan.audit.verify`.

This is the stage that misses copies, not the verifier. An edited copy of a real knee added to
the 372-image set became a candidate of its original for: resize + JPEG, contrast, gamma and 5%
crops 100%, padding 88%, 4 degree rotation 88%, all edits at once 82%, a 10% crop 60%. Among
2,000 look-alike phantoms, a 5% crop + resize + JPEG copy 70% of the time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.neighbors import KDTree

NEIGHBOURS = (2, 2)  # candidates per image from each view (frame, content)
SHORTLIST = 16  # neighbours taken from the tree, then re-ranked
INDEX_DIMS = 8  # whitened components the tree is built on
RANK_DIMS = 48  # whitened components the shortlist is re-ranked on
_WHITENING_FLOOR = 1.0  # regularises whitening: components with little variance are not blown up


def candidate_pairs(embeddings: np.ndarray, neighbours: Sequence[int] = NEIGHBOURS) -> np.ndarray:
    """Pairs (i < j) worth verifying, from ``embeddings`` of shape (n, views, dims)."""
    n = embeddings.shape[0]
    if n < 2:
        return np.zeros((0, 2), dtype=np.intp)
    found = []
    for view, count in enumerate(neighbours):
        points = whiten(embeddings[:, view, :].astype(np.float64), RANK_DIMS)
        indexed = np.ascontiguousarray(points[:, :INDEX_DIMS])
        _, shortlist = KDTree(indexed).query(indexed, k=min(SHORTLIST + 1, n))
        distance = np.linalg.norm(points[shortlist] - points[:, None, :], axis=2)
        closest = np.argsort(distance, axis=1)[:, : count + 1]
        nearest = np.take_along_axis(shortlist, closest, axis=1)
        rows = np.repeat(np.arange(n), nearest.shape[1])
        found.append(np.stack([rows, nearest.ravel()], axis=1))
    pairs = np.concatenate(found)
    pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1)
    return np.unique(pairs, axis=0)


def whiten(vectors: np.ndarray, dims: int) -> np.ndarray:
    """Centre, project on the top ``dims`` principal components, whiten, scale to unit length."""
    centred = vectors - vectors.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2 / max(1, len(vectors) - 1)
    keep = min(dims, int((variance > 1e-9 * variance.max(initial=0)).sum()) or 1)
    scale = 1.0 / np.sqrt(variance[:keep] + _WHITENING_FLOOR * variance.mean())
    projected = centred @ components[:keep].T * scale
    norms = np.linalg.norm(projected, axis=1, keepdims=True)
    return projected / np.where(norms > 0, norms, 1.0)
