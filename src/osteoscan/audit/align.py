"""Register two thumbnails of what may be the same radiograph, then compare their fine detail.

Every knee X-ray looks like every other at thumbnail size, and even after aligning two different
knees their bone outlines and soft-tissue edges coincide, so neither a similarity of whole
thumbnails nor one of their edges tells "the same radiograph, cropped and re-encoded" from
"another patient's knee". What only the same radiograph shares is its finest detail (trabecular
texture, film and detector grain) at the same place. So, for a pair (A, B), the verifier

1. places A in B: frame onto frame, or, when the frames disagree, the best isotropic scale and
   shift found by masked cross-correlation of 32-px thumbnails (crops and padding move and
   scale the content); the image that shows more (padding, a wider crop) becomes the template,
   so that its extra border falls outside the other image instead of pulling the fit;
2. refines an affine warp by robust Lucas-Kanade on 32- and then 64-px thumbnails (inverse
   compositional, Huber-weighted, so that padding, rotation corners and burned-in bars do not
   pull the fit), which absorbs resizing, crops, small rotations and aspect changes;
3. correlates the detail finer than 4 px of the two 128-px thumbnails, each divided by its local
   strength (so brightness, contrast and mild gamma changes do not matter), over their overlap.

Step 2 runs on many pairs at once (numpy over a batch axis): one pair at a time it would spend
most of its time in Python overhead. The result is a similarity in [-1, 1]; the threshold is
chosen in :mod:`osteoscan.audit.verify`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

DETAIL_SIDE = 128  # long side of the thumbnail whose detail is compared
LEVEL_SIDES = (32, 64)  # the warp is refined coarse to fine on thumbnails this long
LEVEL_ITERATIONS = (6, 4)
SEARCH_SCALES = (0.86, 1.0, 1.16)  # A is placed in B on the first level at these scales
SEARCH_BELOW = 0.9  # and every shift, when the frames correlate less than this
DETAIL_SCALE = 4  # detail finer than this many pixels of the 128-px thumbnail is compared
MIN_OVERLAP = 0.5  # below this fraction of A inside B, the pair is not a duplicate
_SEARCH_FFT = (72, 72)  # no wrap-around: > first-level side + A scaled by up to 1.16
_HUBER = 1.5


@dataclass(frozen=True, eq=False)
class AlignmentView:
    """What one image contributes to a comparison, prepared once per image."""

    levels: tuple[np.ndarray, ...]  # standardised thumbnails at LEVEL_SIDES
    thumbnail: np.ndarray  # standardised, at DETAIL_SIDE
    detail: np.ndarray  # its local-contrast-normalised fine detail

    @cached_property
    def search_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For placing another image in this one: the FFT of the first level, and the summed
        area tables of it and of its square."""
        first = self.levels[0].astype(np.float64)
        return np.fft.rfft2(first, _SEARCH_FFT), _summed_area(first), _summed_area(first * first)


def alignment_view(thumbnail: np.ndarray) -> AlignmentView:
    """Prepare a DETAIL_SIDE thumbnail (any intensity scale) for :func:`similarities`."""
    thumbnail = np.asarray(thumbnail, dtype=np.float32)
    image = Image.fromarray(thumbnail)
    levels = tuple(_resized(image, side) for side in LEVEL_SIDES)
    standardised = _standardise(thumbnail)
    return AlignmentView(levels, standardised, _local_detail(standardised))


def similarity(a: AlignmentView, b: AlignmentView) -> float:
    """Detail correlation of ``a`` and ``b`` after aligning b onto a; 0 when they barely overlap."""
    return float(similarities([a], [b])[0])


def similarities(a: Sequence[AlignmentView], b: Sequence[AlignmentView]) -> np.ndarray:
    """:func:`similarity` of each pair (a[k], b[k]), computed as one batch.

    The image that shows more (padding, a wider crop) becomes the template: its extra border
    then falls outside the other image and drops out, instead of pulling the fit.
    """
    a, b, warps = list(a), list(b), [_initial_warp(x, y) for x, y in zip(a, b, strict=True)]
    for k, warp in enumerate(warps):
        if np.linalg.det(warp[:2, :2]) < 1.0:  # A appears smaller inside B: B shows more
            a[k], b[k], warps[k] = b[k], a[k], np.linalg.inv(warp)
    warps = np.stack(warps)
    shapes = [(x.levels[0].shape, y.levels[0].shape) for x, y in zip(a, b, strict=True)]
    alive = np.ones(len(a), dtype=bool)
    for level, iterations in enumerate(LEVEL_ITERATIONS):
        new_shapes = [
            (x.levels[level].shape, y.levels[level].shape) for x, y in zip(a, b, strict=True)
        ]
        warps = np.stack(
            [_rescale(w, old, new) for w, old, new in zip(warps, shapes, new_shapes, strict=True)]
        )
        warps, overlapping = _batch_lk(
            [x.levels[level] for x in a], [y.levels[level] for y in b], warps, iterations
        )
        alive &= overlapping
        shapes = new_shapes
    scores = np.zeros(len(a))
    for k in np.flatnonzero(alive):
        detail_shapes = (a[k].detail.shape, b[k].thumbnail.shape)
        warp = _rescale(warps[k], shapes[k], detail_shapes)
        scores[k] = _correlation(a[k].detail, b[k].thumbnail, warp)
    return scores


def _resized(image: Image.Image, side: int) -> np.ndarray:
    scale = side / max(image.size)
    size = (max(4, round(image.width * scale)), max(4, round(image.height * scale)))
    return _standardise(np.asarray(image.resize(size, Image.Resampling.BOX), dtype=np.float32))


def _standardise(values: np.ndarray) -> np.ndarray:
    return ((values - values.mean()) / (values.std() + 1e-6)).astype(np.float32)


def _frame(shape: tuple[int, ...]) -> np.ndarray:
    """Pixel coordinates (centres at +0.5) to coordinates in [0, 1] across the image."""
    height, width = shape[:2]
    return np.array([[1 / width, 0, 0.5 / width], [0, 1 / height, 0.5 / height], [0, 0, 1]])


def _rescale(pixel_warp: np.ndarray, old: tuple, new: tuple) -> np.ndarray:
    """A warp between pixels of images of shapes ``old`` (A, B) to one between shapes ``new``."""
    normalised = _frame(old[1]) @ pixel_warp @ np.linalg.inv(_frame(old[0]))
    return np.linalg.inv(_frame(new[1])) @ normalised @ _frame(new[0])


def _initial_warp(a: AlignmentView, b: AlignmentView) -> np.ndarray:
    """The start, in first-level pixels: frame onto frame, unless the search places A better.

    Frame onto frame suits copies resized to another aspect ratio; the search suits crops and
    padding. It only runs when the frames disagree, which saves most of its cost.
    """
    first_a, first_b = a.levels[0], b.levels[0]
    frame = np.linalg.inv(_frame(first_b.shape)) @ _frame(first_a.shape)
    agreement = _overlap_correlation(first_a, first_b, frame)
    if agreement >= SEARCH_BELOW:
        return frame
    placed = _search(first_a, b.search_tables)
    return placed if _overlap_correlation(first_a, first_b, placed) > agreement else frame


def _search(template: np.ndarray, tables: tuple[np.ndarray, ...]) -> np.ndarray:
    """Isotropic scale and integer shift of ``template`` in the image with the highest
    normalised cross-correlation over their overlap: the cross term by FFT, the sums over each
    overlap from summed-area tables."""
    spectrum, image_sums, image_squares = tables
    height, width = image_sums.shape[0] - 1, image_sums.shape[1] - 1
    best, best_warp = -np.inf, np.eye(3)
    for scale in SEARCH_SCALES:
        size = (max(4, round(template.shape[1] * scale)), max(4, round(template.shape[0] * scale)))
        moved = np.asarray(Image.fromarray(template).resize(size, Image.Resampling.BILINEAR))
        moved = moved.astype(np.float64)
        h, w = moved.shape
        dy = np.arange(1 - h, height)[:, None]  # template's top-left corner in the image
        dx = np.arange(1 - w, width)[None, :]
        y0, y1 = np.maximum(dy, 0), np.minimum(dy + h, height)
        x0, x1 = np.maximum(dx, 0), np.minimum(dx + w, width)
        count = (y1 - y0) * (x1 - x0)
        sum_i = _box(image_sums, y0, y1, x0, x1)
        sum_ii = _box(image_squares, y0, y1, x0, x1)
        sum_t = _box(_summed_area(moved), y0 - dy, y1 - dy, x0 - dx, x1 - dx)
        sum_tt = _box(_summed_area(moved * moved), y0 - dy, y1 - dy, x0 - dx, x1 - dx)
        cross = np.fft.irfft2(np.conj(np.fft.rfft2(moved, _SEARCH_FFT)) * spectrum, _SEARCH_FFT)
        sum_ti = cross[dy % _SEARCH_FFT[0], dx % _SEARCH_FFT[1]]
        n = np.maximum(count, 1)
        variance = (sum_tt - sum_t**2 / n) * (sum_ii - sum_i**2 / n)
        score = (sum_ti - sum_t * sum_i / n) / np.sqrt(np.maximum(variance, 1e-6))
        score[(count < MIN_OVERLAP * moved.size) | (variance <= 1e-6)] = -np.inf
        row, col = np.unravel_index(np.argmax(score), score.shape)
        if score[row, col] > best:
            best = score[row, col]
            sy, sx = h / template.shape[0], w / template.shape[1]
            shift_y, shift_x = row + 1 - h, col + 1 - w
            best_warp = np.array(
                [[sx, 0, 0.5 * sx - 0.5 + shift_x], [0, sy, 0.5 * sy - 0.5 + shift_y], [0, 0, 1]]
            )
    return best_warp


def _summed_area(values: np.ndarray) -> np.ndarray:
    """table[i, j] = values[:i, :j].sum()."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = values.cumsum(0).cumsum(1)
    return table


def _box(table: np.ndarray, y0, y1, x0, x1) -> np.ndarray:
    """Sums of the boxes [y0:y1, x0:x1] from a summed-area table (broadcasting the bounds)."""
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]


def _overlap_correlation(a: np.ndarray, b: np.ndarray, warp: np.ndarray) -> float:
    ys, xs = (c.ravel() for c in np.indices(a.shape, dtype=np.float32))
    values, inside = _sample(b, warp, xs, ys)
    if inside.mean() < MIN_OVERLAP:
        return -1.0
    return _ncc(a.ravel()[inside], values[inside])


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    denominator = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denominator) if denominator > 0 else 0.0


def _sample(
    image: np.ndarray, warp: np.ndarray, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``image`` at ``warp`` applied to (xs, ys), and which fell inside."""
    shape = np.array(image.shape)[:, None]
    return _batch_sample(image.ravel(), 0, shape.T, warp[:2].reshape(6, 1), xs, ys)


def _batch_sample(
    flat: np.ndarray,
    offsets: np.ndarray,
    shapes: np.ndarray,
    warps: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples, at the affine ``warps[:, k]`` applied to (xs[k], ys[k]), of the image
    starting at ``flat[offsets[k]]`` with shape ``shapes[k]``; plus which points fell inside.

    Everything is indexed per point, so the points of many images are sampled in one pass.
    """
    height, width = shapes[:, 0], shapes[:, 1]
    wx = warps[0] * xs + warps[1] * ys + warps[2]
    wy = warps[3] * xs + warps[4] * ys + warps[5]
    # a hair of tolerance: an identity warp that rounding moved by 1e-9 px keeps its edge pixels
    slack = 1e-3
    inside = (
        (wx >= -slack) & (wx <= width - 1 + slack) & (wy >= -slack) & (wy <= height - 1 + slack)
    )
    wx = np.clip(wx, 0, width - 1.001)
    wy = np.clip(wy, 0, height - 1.001)
    x0, y0 = wx.astype(np.intp), wy.astype(np.intp)
    wx -= x0
    wy -= y0
    corner = offsets + y0 * width + x0
    top = flat[corner]
    top += (flat[corner + 1] - top) * wx
    corner += width
    bottom = flat[corner]
    bottom += (flat[corner + 1] - bottom) * wx
    top += (bottom - top) * wy
    return top, inside


_UPPER = np.triu_indices(6)


def _batch_lk(
    templates: Sequence[np.ndarray],
    images: Sequence[np.ndarray],
    warps: np.ndarray,
    iterations: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine the affine ``warps`` (template pixels -> image pixels) of many pairs at once.

    The pixels of all templates are laid end to end (pair k owns ``sizes[k]`` of them) and
    per-pair sums are ``np.add.reduceat`` over those runs. Returns the warps and which pairs
    still overlap enough to be compared.
    """
    count = len(templates)
    sizes = np.array([t.size for t in templates])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    owner = np.repeat(np.arange(count), sizes)
    ys, xs = np.concatenate([np.indices(t.shape, np.float32).reshape(2, -1) for t in templates], 1)
    gradients = [np.gradient(t) for t in templates]
    grad_y = np.concatenate([g[0].ravel() for g in gradients])
    grad_x = np.concatenate([g[1].ravel() for g in gradients])
    jacobian = np.stack([grad_x * xs, grad_x * ys, grad_x, grad_y * xs, grad_y * ys, grad_y], 1)
    outer = jacobian[:, _UPPER[0]] * jacobian[:, _UPPER[1]]
    template = np.concatenate([t.ravel() for t in templates])
    flat = np.concatenate([i.ravel() for i in images])
    textured = np.concatenate([_textured(i).ravel() for i in images])
    offsets = np.cumsum([0] + [i.size for i in images[:-1]], dtype=np.intp)[owner]
    shapes = np.array([i.shape for i in images])[owner]

    def per_pair(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts, axis=0)

    overlapping = np.ones(count, dtype=bool)
    for _ in range(iterations):
        params = warps[:, :2, :].reshape(count, 6)[owner]
        values, inside = _batch_sample(flat, offsets, shapes, params.T, xs, ys)
        weight = inside.astype(np.float32)
        nearest = (
            offsets
            + np.rint(
                np.clip(params[:, 3] * xs + params[:, 4] * ys + params[:, 5], 0, shapes[:, 0] - 1)
            ).astype(np.intp)
            * shapes[:, 1]
            + np.rint(
                np.clip(params[:, 0] * xs + params[:, 1] * ys + params[:, 2], 0, shapes[:, 1] - 1)
            ).astype(np.intp)
        )
        overlapping = per_pair(weight) >= MIN_OVERLAP * sizes
        weight *= textured[nearest]
        n = np.maximum(per_pair(weight), 1.0)
        target = template - (per_pair(template * weight) / n)[owner]
        moving = values - (per_pair(values * weight) / n)[owner]
        spread = np.sqrt(per_pair(target * target * weight) / n) + 1e-6
        moving_spread = np.sqrt(per_pair(moving * moving * weight) / n) + 1e-6
        error = (moving / moving_spread[owner] - target / spread[owner]) * weight
        magnitude = np.abs(error)
        typical = _HUBER * per_pair(magnitude) / n
        weight *= np.minimum(1.0, typical[owner] / (magnitude + 1e-9))
        hessian = np.zeros((count, 6, 6))
        hessian[:, _UPPER[0], _UPPER[1]] = per_pair(outer * weight[:, None])
        hessian[:, _UPPER[1], _UPPER[0]] = hessian[:, _UPPER[0], _UPPER[1]]
        hessian += 1e-6 * np.eye(6)
        gradient = per_pair(jacobian * (weight * error)[:, None]) * spread[:, None]
        step = np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
        step[~overlapping] = 0.0
        update = np.zeros((count, 3, 3))
        update[:, :2, :] = step.reshape(count, 2, 3)
        update += np.eye(3)
        warps = warps @ np.linalg.inv(update)
    return warps, overlapping


def _textured(image: np.ndarray) -> np.ndarray:
    """1 where the image varies locally, 0 on flat padding (which must not pull the fit)."""
    padded = np.pad(image, 1, mode="edge")
    neighbours = [
        padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    ]
    spread = np.max(neighbours, axis=0) - np.min(neighbours, axis=0)
    return (spread > 1e-3).astype(np.float32)


def _blur(values: np.ndarray, factor: int) -> np.ndarray:
    height, width = values.shape
    image = Image.fromarray(values.astype(np.float32))
    small = image.resize((max(2, width // factor), max(2, height // factor)), Image.Resampling.BOX)
    return np.asarray(small.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float64)


def _local_detail(values: np.ndarray) -> np.ndarray:
    """Detail finer than DETAIL_SCALE, divided by its local strength (contrast invariant)."""
    detail = values - _blur(values, DETAIL_SCALE)
    strength = np.sqrt(_blur(detail * detail, DETAIL_SCALE))
    return (detail / (strength + 0.5 * detail.std() + 1e-12)).astype(np.float32)


def _correlation(detail_a: np.ndarray, thumbnail_b: np.ndarray, warp: np.ndarray) -> float:
    """Correlation of A's detail with the detail of B warped onto A, over their overlap."""
    ys, xs = (c.ravel() for c in np.indices(detail_a.shape, dtype=np.float32))
    values, inside = _sample(thumbnail_b, warp, xs, ys)
    if inside.mean() < MIN_OVERLAP:
        return 0.0
    warped = np.where(inside, values, values[inside].mean()).reshape(detail_a.shape)
    return _ncc(detail_a.ravel()[inside], _local_detail(warped).ravel()[inside])
