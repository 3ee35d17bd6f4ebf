"""The knee-ROI part of the audit: where no knee is found, and the shortcut check on the crops.

A model trained with ``--roi knee`` sees crops, not files, so the whole-image shortcut features
(width, file size, format) no longer reach it; what still could is how each crop was framed and
exposed. The crop features describe exactly that, never the bone: the crop's side in source
pixels (the acquisition's scale), the share of the square that lies outside the radiograph, and
the statistics of the crop's outer frame (soft tissue and background). An AUC near 0.5 means the
crops no longer tell how each class was collected; the whole-image AUC is shown beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from osteoscan.audit.duplicates import DuplicateGroup
from osteoscan.audit.fingerprint import BRIGHT, DARK, Fingerprint, _border
from osteoscan.audit.shortcut import ShortcutResult, check_feature_shortcuts, leakage_groups
from osteoscan.data.pixels import prepare
from osteoscan.data.records import ImageRecord
from osteoscan.roi.config import RoiConfig

CROP_SIDE = 64  # crops are measured at this side; every feature is independent of it
CROP_FEATURES = (
    "log_crop_side",
    "outside_image",
    "border_mean",
    "border_std",
    "border_dark",
    "border_bright",
    "background",
)


@dataclass(frozen=True)
class RoiAudit:
    """Knees found among the readable images, the failures (record index, reason) and the
    shortcut check on the crops (one sample per crop; a radiograph's crops share its fold)."""

    settings: RoiConfig
    n_images: int
    n_found: int
    n_crops: int
    failures: tuple[tuple[int, str], ...]
    shortcut: ShortcutResult

    def to_dict(self, paths: Sequence[str]) -> dict:
        return {
            "settings": self.settings.to_dict(),
            "n_images": self.n_images,
            "n_found": self.n_found,
            "n_crops": self.n_crops,
            "failures": [{"path": paths[i], "reason": reason} for i, reason in self.failures],
            "shortcut": self.shortcut.to_dict(),
        }


def crop_features(
    crops: np.ndarray, boxes: np.ndarray, image_sizes: Sequence[tuple[int, int]]
) -> np.ndarray:
    """One row of :data:`CROP_FEATURES` per crop: ``crops`` (K, S, S) in [0, 1], ``boxes`` (K, 4)
    left/top/side/mirrored in source pixels, ``image_sizes`` the (width, height) of its source."""
    rows = []
    for crop, (left, top, side, _), (width, height) in zip(crops, boxes, image_sizes, strict=True):
        pixels = np.asarray(crop, dtype=np.float32)
        inside_x = max(0.0, min(left + side, width) - max(left, 0.0))
        inside_y = max(0.0, min(top + side, height) - max(top, 0.0))
        border = _border(pixels)
        rows.append(
            [
                float(np.log(max(side, 1.0))),
                1.0 - inside_x * inside_y / (side * side),
                float(border.mean()),
                float(border.std()),
                float((border < DARK).mean()),
                float((border > BRIGHT).mean()),
                float((pixels < DARK).mean()),
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(CROP_FEATURES))


def audit_crops(
    records: Sequence[ImageRecord],
    fingerprints: Sequence[Fingerprint],
    groups: Sequence[DuplicateGroup],
    roi: RoiConfig,
    cache_dir: Path | None = None,
    workers: int = 1,
) -> RoiAudit:
    """Find the knees of every readable record (crops cached as for training) and run the
    shortcut check on the crops of the labelled ones."""
    readable = [i for i, fp in enumerate(fingerprints) if fp.ok]
    prepared = prepare([records[i].path for i in readable], CROP_SIDE, cache_dir, workers, roi=roi)
    failures = tuple((readable[j], reason) for j, reason in prepared.problems)
    owners = [readable[j] for j in prepared.indices]
    leakage = np.asarray(leakage_groups(records, groups), dtype=np.intp)
    labelled = [k for k, i in enumerate(owners) if records[i].label is not None]
    sizes = [(fingerprints[owners[k]].width, fingerprints[owners[k]].height) for k in labelled]
    features = crop_features(prepared.pixels[labelled], prepared.boxes[labelled], sizes)
    shortcut = check_feature_shortcuts(
        CROP_FEATURES,
        features,
        [records[owners[k]].label for k in labelled],
        leakage[[owners[k] for k in labelled]],
        workers,
        subject="crop properties (scale, framing, exposure at the crop's edge)",
    )
    return RoiAudit(roi, len(readable), len(set(owners)), len(owners), failures, shortcut)
