"""Label conflicts and the shortcut check, on records and fingerprints made by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from osteoscan.audit import DuplicateGroup
from osteoscan.audit.conflicts import find_conflicts
from osteoscan.audit.fingerprint import Fingerprint
from osteoscan.audit.shortcut import WARN_ABOVE, check_shortcuts
from osteoscan.data.records import ImageRecord

N, P = "normal", "osteoporosis"


def record(k: int, label: str, t_score: float | None = None, patient: str | None = None):
    return ImageRecord(Path(f"img{k}.png"), label, t_score, patient)


def test_conflicts_of_every_kind() -> None:
    records = [
        record(0, N, -0.3, "A"),
        record(1, P, -2.9, "A"),  # patient A in both classes
        record(2, N, -1.7),  # WHO osteopenia, labelled normal
        record(3, P, -2.5),  # exactly -2.5 is osteoporosis: no conflict
        record(4, N),
        record(5, P),
        record(6, N),
    ]
    groups = [
        DuplicateGroup("exact", (4, 5), 1.0),  # same image, two labels
        DuplicateGroup("near", (4, 6), 0.9, ((4, 6, 0.9),)),  # same label: fine
    ]
    conflicts = find_conflicts(records, groups)
    assert [(c.kind, c.members) for c in conflicts] == [
        ("duplicate_labels", (4, 5)),
        ("t_score_label", (2,)),
        ("patient_classes", (0, 1)),
    ]
    assert "osteopenia" in conflicts[1].detail and "-1.7" in conflicts[1].detail
    assert "patient A" in conflicts[2].detail


def fingerprint(k: int, width: int, height: int, fmt: str, rng: np.random.Generator) -> Fingerprint:
    return Fingerprint(
        path=f"img{k}.png",
        file_size=int(rng.integers(50_000, 200_000)),
        pixel_hash=str(k),
        format=fmt,
        mode="L",
        bit_depth=8,
        width=width,
        height=height,
        border_mean=float(rng.random()),
        border_std=float(rng.random()),
        background=float(rng.random()),
    )


def cohort(shortcut: bool, n: int = 120) -> tuple[list[ImageRecord], list[Fingerprint]]:
    rng = np.random.default_rng(3)
    records, fps = [], []
    for k in range(n):
        label = P if k % 2 else N
        width, height = int(rng.integers(400, 1000)), int(rng.integers(800, 1100))
        fmt = "PNG" if rng.random() < 0.5 else "JPEG"
        if shortcut and label == P:
            width, fmt = width + 600, "JPEG"  # osteoporosis exported wider, always as JPEG
        records.append(record(k, label))
        fps.append(fingerprint(k, width, height, fmt, rng))
    return records, fps


def test_no_shortcut_gives_chance_auc_and_no_warning() -> None:
    result = check_shortcuts(*cohort(shortcut=False))
    assert result.auc == pytest.approx(0.5, abs=0.12)
    assert result.ci_low < 0.5 < result.ci_high
    assert result.warning is None
    assert result.positive_class == P and result.n_images == 120 and result.n_folds == 5


def test_planted_shortcut_is_found_and_explained() -> None:
    result = check_shortcuts(*cohort(shortcut=True))
    assert result.auc > 0.95 and result.ci_low > WARN_ABOVE
    assert result.warning.startswith("WARNING") and "width" in result.warning
    assert result.strongest[0][0] in ("width", "aspect_ratio", "format=JPEG", "format=PNG")


def test_duplicates_stay_in_one_fold_so_copies_do_not_fake_a_shortcut() -> None:
    """Ten images copied 12 times each: file size identifies the image, hence its label. With
    copies split across folds that would look like a shortcut; grouped, it cannot."""
    rng = np.random.default_rng(5)
    records, fps, groups = [], [], []
    for image in range(10):
        label, size = (P if image % 2 else N), int(rng.integers(50_000, 200_000))
        members = []
        for _ in range(12):
            k = len(records)
            records.append(record(k, label))
            fp = fingerprint(k, 500, 900, "PNG", rng)
            fps.append(
                Fingerprint(
                    **{
                        **fp.__dict__,
                        "file_size": size,
                        "border_mean": 0.0,
                        "border_std": 0.0,
                        "background": 0.0,
                    }
                )
            )
            members.append(k)
        groups.append(DuplicateGroup("exact", tuple(members), 1.0))
    assert check_shortcuts(records, fps, groups).warning is None
    assert check_shortcuts(records, fps).warning is not None


def test_too_few_images_skip_the_check_with_a_reason() -> None:
    records, fps = cohort(shortcut=False, n=3)
    result = check_shortcuts(records, fps)
    assert result.auc is None and "two readable images" in result.note


def test_few_patients_fold_by_patient_instead_of_failing() -> None:
    """Three patients hold all 120 images: five folds that keep patients whole cannot exist, so
    the check folds by patient (three folds) instead of stopping the audit."""
    records, fps = cohort(shortcut=True)
    records = [record(k, r.label, patient=f"P{k % 3}") for k, r in enumerate(records)]
    result = check_shortcuts(records, fps)
    assert result.auc is not None and result.n_folds == 3


def test_one_patient_skips_the_check_with_a_reason() -> None:
    records, fps = cohort(shortcut=True, n=20)
    records = [record(k, r.label, patient="P1") for k, r in enumerate(records)]
    result = check_shortcuts(records, fps)
    assert result.auc is None and "independent image groups" in result.note
