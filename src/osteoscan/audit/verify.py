"""Verify near-duplicate candidates by alignment, and the threshold that decides.

Each candidate pair is scored by :func:`osteoscan.audit.align.similarities`: the correlation of
the finest detail after affine registration (1.0: the same pixels). A pair is a near duplicate
when its score is at least NEAR_THRESHOLD. Pairs are scored in batches, in a process pool when
there are many.

Why 0.80. Measured with this code, on ../shared/data/knee-xray-372 (the 904 candidate pairs the
index proposes there: the most alike pairs in the set), on copies of 40 of its images edited at
full resolution, and on the project's synthetic phantoms:

* different radiographs in the real set: at most 0.71 (the closest pairs, checked by eye, are
  other knees with the same framing, exposure and side marker);
* the same radiograph stored twice in the real set (re-encoded, re-cropped by up to 30%, padded,
  stretched by 3%; all 17 pairs checked by eye): 0.85 to 0.995;
* edited copies scoring at least 0.80 (of 40; 5th percentile of the score): resized to 2/3 +
  JPEG q70 40 (0.93); 5% crop 39 (0.85); 10% crop 40 (0.86); padding on two sides 38 (0.82);
  contrast x1.3 40 (0.91); 4 degree rotation 37 (0.76); gamma 0.8 35 (0.78); resize + JPEG +
  4% crop + 3 degree rotation + contrast at once 34 (0.77). Often missed: a 5 degree rotation
  that enlarges the canvas (28) and gamma 0.6 (15);
* synthetic phantoms (drawn by one generator, so more alike than real knees): at most 0.72 among
  120 at 96 or 320 px, 0.76 among 1,000 at 96 px, but 0.81 among 1,000 at 320 px, where 3 of
  2,600 candidate pairs pass: on large phantom sets a few look-alikes are grouped.

0.80 sits above every different real radiograph seen, with a margin of 0.09, and below nearly
every single-edit copy. At 0.85 those phantom pairs would go, but so would one real copy (the
3%-stretched pair scores 0.849) and about a quarter of the heavily edited ones.
"""

from __future__ import annotations

import multiprocessing
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from osteoscan.audit import align

NEAR_THRESHOLD = 0.8
_PARALLEL_FROM = 400  # fewer candidate pairs than this are verified in-process


def verify_pairs(
    thumbnails: Sequence[np.ndarray], pairs: np.ndarray, workers: int = 1
) -> np.ndarray:
    """Alignment similarity of each pair of indices into ``thumbnails`` (any intensity scale)."""
    if len(pairs) == 0:
        return np.zeros(0)
    if workers <= 1 or len(pairs) < _PARALLEL_FROM:
        return _Scorer(thumbnails).score_all(pairs)
    chunks = np.array_split(pairs, workers * 8)
    with multiprocessing.get_context("spawn").Pool(
        workers, initializer=_init_worker, initargs=(list(thumbnails),)
    ) as pool:
        return np.concatenate(pool.map(_score_chunk, chunks, chunksize=1))


class _Scorer:
    """Scores pairs, keeping the alignment views of the most recently used images."""

    _CACHE_SIZE = 1024  # views of about 160 KB each
    _BATCH = 32  # pairs aligned together; larger batches stop fitting in the CPU cache

    def __init__(self, thumbnails: Sequence[np.ndarray]) -> None:
        self.thumbnails = thumbnails
        self.views: OrderedDict[int, align.AlignmentView] = OrderedDict()

    def view(self, index: int) -> align.AlignmentView:
        if index in self.views:
            self.views.move_to_end(index)
        else:
            if len(self.views) >= self._CACHE_SIZE:
                self.views.popitem(last=False)
            self.views[index] = align.alignment_view(self.thumbnails[index])
        return self.views[index]

    def score_all(self, pairs: np.ndarray) -> np.ndarray:
        scores = []
        for chunk in np.array_split(pairs, max(1, len(pairs) // self._BATCH)):
            views = [(self.view(i), self.view(j)) for i, j in chunk.tolist()]
            scores.append(align.similarities([a for a, _ in views], [b for _, b in views]))
        return np.concatenate(scores)


_WORKER_SCORER: _Scorer | None = None


def _init_worker(thumbnails: list[np.ndarray]) -> None:
    global _WORKER_SCORER
    _WORKER_SCORER = _Scorer(thumbnails)
    # The small matrix products of the registration would otherwise start BLAS threads in every
    # worker, and the workers would fight over the same cores.
    threadpool_limits(1)


def _score_chunk(chunk: np.ndarray) -> np.ndarray:
    return _WORKER_SCORER.score_all(chunk)
