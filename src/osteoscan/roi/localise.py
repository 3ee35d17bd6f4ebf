"""Find the knee joints in an AP radiograph: classical, deterministic and cheap.

The joint space is the one long, horizontal dark line across the width of a wide bone: the gap
between the femoral condyles and the tibial plateau. The search runs on a copy shrunk to
``RoiConfig.work_size``:

1. legs: the bright column bands of the image (one, or two side by side in a bilateral view);
2. joint line: in each band, the row where a horizontal valley (darker than the rows a few
   pixels above and below) runs across the most bone;
3. joint width: the span of that valley, from the outer edge of one compartment to the other,
   widened to the bright bone run just above and below it when the valley covers less;
4. confidence: how far that row stands out from every other row of the band.

A band whose best row does not stand out gives "no knee found" with the reason, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from osteoscan.roi.config import RoiConfig

SATURATED = 0.985  # flat white labels and bars, not bone: treated as background
VALLEY_OFFSETS = (1, 2, 3, 4, 5)  # half-heights of joint gaps tried, in work pixels
# The weakest joint line on the 372 real images averages 0.018 across its band; smooth shapes
# without a gap (a blob) reach 0.009.
MIN_LINE = 0.012
MIN_SPREAD = 0.001  # floor of the rows' robust spread, so a flat image has no "outstanding" row
EDGE_MARGIN = 0.05  # share of the height at the top and bottom where no joint is searched
SIDE_RADIUS = 2  # bone above and below the gap must be this thick (2 r + 1 rows)
MAX_DEPTH = 0.12  # per-pixel cap of the valley depth
BONE_LEVEL = 0.5  # the sides of a gap are bone when brighter than this share of their column's peak


@dataclass(frozen=True)
class Knee:
    """One detected joint in source-image pixels (x to the right, y down; floats)."""

    centre_x: float
    centre_y: float
    joint_width: float
    confidence: float
    side: str | None = None  # "left" / "right" when it can be told, else None
    joint_width_mm: float | None = None

    @property
    def label(self) -> str:
        return self.side or "knee"


@dataclass(frozen=True)
class KneeDetection:
    """What :func:`find_knees` saw: the knees (image left to right) or why there were none."""

    knees: tuple[Knee, ...]
    image_width: int
    image_height: int
    reason: str = ""  # why no knee (or fewer than the bands suggested) was found

    @property
    def found(self) -> bool:
        return bool(self.knees)

    @property
    def confidence(self) -> float:
        return min((knee.confidence for knee in self.knees), default=0.0)


def _box_rows(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1) window along axis 1, edges repeated."""
    if radius < 1:
        return a
    padded = np.pad(a, ((0, 0), (radius + 1, radius)), mode="edge")
    summed = np.cumsum(padded, axis=1, dtype=np.float64)
    return ((summed[:, 2 * radius + 1 :] - summed[:, : -2 * radius - 1]) / (2 * radius + 1)).astype(
        np.float32
    )


def _shrink(pixels: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    """The image shrunk so its longer side is at most ``work_size``; returns (image, scale)."""
    height, width = pixels.shape
    scale = min(1.0, work_size / max(height, width))
    if scale == 1.0:
        return pixels.astype(np.float32, copy=False), 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(pixels.astype(np.float32, copy=False), mode="F")
    small = small.reduce(max(1, int(1 / scale) // 2)) if scale < 0.25 else small
    return np.asarray(small.resize(size, Image.Resampling.BILINEAR), dtype=np.float32), scale


def _normalise(work: np.ndarray) -> np.ndarray:
    """Saturated labels to black, then the 2nd-99.5th percentiles to [0, 1]."""
    work = np.where(work >= SATURATED * float(work.max(initial=0.0)), 0.0, work)
    low, high = np.percentile(work, [2.0, 99.5])
    if high - low < 1e-3:
        return np.zeros_like(work)
    return np.clip((work - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _leg_bands(image: np.ndarray, max_knees: int) -> list[tuple[int, int]]:
    """Column ranges [start, stop) of the bright legs, largest ``max_knees``, left to right."""
    width = image.shape[1]
    profile = np.percentile(image, 70, axis=0)
    background, peak = np.percentile(profile, [5, 95])
    if peak - background < 0.15:
        return []
    bright = profile > background + 0.3 * (peak - background)
    runs: list[list[int]] = []
    for x in np.flatnonzero(bright):
        if runs and x - runs[-1][1] <= max(2, width // 40):
            runs[-1][1] = x + 1
        else:
            runs.append([x, x + 1])
    runs = [run for run in runs if run[1] - run[0] >= max(6, width // 12)]
    mass = [float(profile[a:b].sum()) for a, b in runs]
    keep = sorted(np.argsort(mass)[::-1][:max_knees])
    if (
        len(keep) == 2
        and mass[keep[0]] < 0.35 * mass[keep[1]]
        or (len(keep) == 2 and mass[keep[1]] < 0.35 * mass[keep[0]])
    ):
        keep = [max(keep, key=lambda index: mass[index])]
    return [(runs[index][0], runs[index][1]) for index in keep]


def _box_columns(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1) window along axis 0, edges repeated."""
    return _box_rows(a.T, radius).T


def _valley(band: np.ndarray) -> np.ndarray:
    """Per pixel, how much darker it is than thick bright bone both above and below (0 if not).

    The sides are averaged over several rows so that a thin bright line (an image border, the
    edge of a label) beside a dark strip is no joint; the depth is capped so one strong local
    contrast (a lead marker) cannot outweigh a faint line that crosses the whole bone.
    """
    smooth = _box_rows(band, max(1, band.shape[1] // 60))
    thick = _box_columns(smooth, SIDE_RADIUS)
    bone = BONE_LEVEL * thick.max(axis=0)  # per column, as the exposure drifts sideways
    best = np.zeros_like(smooth)
    for offset in VALLEY_OFFSETS:
        reach = offset + SIDE_RADIUS
        if smooth.shape[0] <= 2 * reach + 2:
            break
        centre = smooth[reach:-reach]
        sides = np.minimum(thick[: -2 * reach], thick[2 * reach :])
        depth = np.clip(sides - centre, 0.0, MAX_DEPTH) * (sides > bone)
        best[reach:-reach] = np.maximum(best[reach:-reach], depth)
    # Rows whose sides would leave the image, and the outer 5%: collimator edges and labels
    # sit there, and a joint that close to the edge has no room for its crop.
    margin = max(max(VALLEY_OFFSETS) + 2 * SIDE_RADIUS, round(EDGE_MARGIN * band.shape[0]))
    best[:margin] = 0.0
    best[-margin:] = 0.0
    return best


def _bone_span(band: np.ndarray, x: int, y: int, valley_width: float) -> tuple[int, int]:
    """[left, right) of the bright bone run through ``x`` a little above and below the joint line
    (condyles and plateau at their widest, past the intercondylar notch that would split it).

    Bone is brighter than halfway from the soft tissue (the band's darkest non-background
    columns) to the bone beside the joint line.
    """
    height = band.shape[0]
    rows = np.r_[max(0, y - 16) : max(0, y - 6), min(height, y + 6) : min(height, y + 16)]
    profile = np.convolve(band[rows].mean(axis=0), np.ones(3) / 3, mode="same")
    reach = max(1, int(0.2 * valley_width))
    bone = float(profile[max(0, x - reach) : x + reach + 1].max())
    tissue_columns = profile[profile > 0.08]
    tissue = float(np.percentile(tissue_columns, 5)) if tissue_columns.size else 0.0
    outside = np.flatnonzero(profile < tissue + 0.5 * (bone - tissue))
    left_edges, right_edges = outside[outside < x], outside[outside > x]
    left = int(left_edges[-1]) + 1 if left_edges.size else 0
    right = int(right_edges[0]) if right_edges.size else profile.size
    return left, right


def _joint_in_band(
    image: np.ndarray, start: int, stop: int
) -> tuple[float, float, float, float] | str:
    """(x, y, width, confidence) of the band's joint in work pixels, or why there is none;
    ``x`` is on the edge grid (a pixel spans [i, i + 1)), ``y`` a row index."""
    pad = (stop - start) // 10
    start, stop = max(0, start - pad), min(image.shape[1], stop + pad)
    valley = _valley(image[:, start:stop])
    rows = valley.sum(axis=1) / (stop - start)
    rows = np.convolve(rows, np.ones(3) / 3, mode="same")
    y = int(np.argmax(rows))
    if rows[y] < MIN_LINE:
        return f"no horizontal joint space in the bright band (line {rows[y]:.3f} < {MIN_LINE})"
    floor = float(np.median(rows))
    spread = max(float(np.median(np.abs(rows - floor))) * 1.4826, MIN_SPREAD)
    contrast = (rows[y] - floor) / spread
    near = max(VALLEY_OFFSETS) * 3
    others = np.concatenate([rows[: max(0, y - near)], rows[y + near :]])
    runner_up = float(others.max(initial=floor))
    distinct = (rows[y] - runner_up) / max(rows[y] - floor, 1e-6)
    confidence = float(np.clip(contrast / 20.0, 0.0, 1.0) * np.clip(0.3 + distinct, 0.0, 1.0))
    line = valley[max(0, y - 1) : y + 2].max(axis=0)
    line = np.convolve(line, np.ones(5) / 5, mode="same")
    span = np.flatnonzero(line > 0.3 * line.max())
    left, right = float(span[0]), float(span[-1] + 1)
    x = start + (left + right) / 2
    bone_left, bone_right = _bone_span(image[:, start:stop], int(x) - start, y, right - left)
    # A narrowed or faint compartment leaves the valley spanning one condyle only: the bone
    # span then says where the whole joint is, unless it ran out into the soft tissue.
    bone_width = bone_right - bone_left
    if right - left <= bone_width <= 3.0 * (right - left) and bone_width < 0.95 * (stop - start):
        left, right = float(bone_left), float(bone_right)
    return start + (left + right) / 2, float(y), right - left, confidence


def find_knees(
    pixels: np.ndarray,
    config: RoiConfig | None = None,
    pixel_spacing: tuple[float, float] | None = None,
) -> KneeDetection:
    """Find the knee joint(s) of a decoded radiograph (2-D, [0, 1], bone bright).

    ``pixel_spacing`` (row, column mm per pixel, DICOM PixelSpacing) turns the joint width into
    millimetres and rejects joints of implausible size. Deterministic; no knee gives a detection
    with ``found`` False and a ``reason``.
    """
    config = config or RoiConfig()
    height, width = pixels.shape
    work, scale = _shrink(pixels, config.work_size)
    image = _normalise(work)
    bands = _leg_bands(image, config.max_knees)
    if not bands:
        return KneeDetection((), width, height, "no bright leg: blank or featureless image")
    knees, reasons = [], []
    for start, stop in bands:
        found = _joint_in_band(image, start, stop)
        if isinstance(found, str):
            reasons.append(found)
            continue
        x, y, joint_width, confidence = found
        if confidence < config.min_confidence:
            reasons.append(f"joint line too faint (confidence {confidence:.2f})")
            continue
        joint_mm = None
        if pixel_spacing is not None:
            joint_mm = joint_width / scale * float(pixel_spacing[1])
            low, high = config.joint_width_mm
            if not low <= joint_mm <= high:
                reasons.append(f"joint {joint_mm:.0f} mm wide, outside {low:.0f}-{high:.0f} mm")
                continue
        knees.append(
            Knee(
                centre_x=float(x / scale - 0.5),
                centre_y=float((y + 0.5) / scale - 0.5),
                joint_width=float(joint_width / scale),
                confidence=round(confidence, 4),
                joint_width_mm=joint_mm,
            )
        )
    if len(knees) == 2 and config.radiological_display:
        knees = [replace(knees[0], side="right"), replace(knees[1], side="left")]
    reason = "; ".join(reasons) if reasons else ""
    return KneeDetection(tuple(knees), width, height, reason)
