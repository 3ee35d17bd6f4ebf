"""The audit on the real 372-image knee set (skipped when ../shared/data is not beside the repo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osteoscan.audit import run_audit
from osteoscan.audit.shortcut import WARN_ABOVE

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "knee-xray-372"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not REAL_DATA.is_dir(),
        reason=f"real knee X-rays not found at {REAL_DATA} (they live in ../shared/data)",
    ),
]


def test_real_dataset_audit_is_consistent(tmp_path) -> None:
    result = run_audit(REAL_DATA, out_dir=tmp_path, workers=2)
    inv = result.inventory
    assert len(result.paths) == inv.n_files == sum(inv.files_per_class.values()) == 372
    unreadable_images = sum(1 for p in inv.unreadable if p.path in set(result.paths))
    assert sum(inv.readable_per_class.values()) + unreadable_images == 372
    assert inv.width["all"].count == sum(inv.readable_per_class.values())
    for counts in (inv.formats, inv.modes, inv.bit_depths):
        assert sum(counts["all"].values()) == inv.width["all"].count

    groups = result.exact_duplicates + result.near_duplicates
    assert result.exact_duplicates, "the real set is known to hold exact copies"
    for group in groups:
        assert len(group.members) >= 2
        assert len(set(group.members)) == len(group.members)
        assert all(0 <= i < 372 for i in group.members)
    exact_files = [i for g in result.exact_duplicates for i in g.members]
    assert len(exact_files) == len(set(exact_files))  # exact groups are disjoint
    cross = [g for g in groups if result.is_cross_class(g)]
    assert len(result.conflicts_of("duplicate_labels")) == len(cross)
    assert result.shortcut.auc is not None and result.shortcut.n_images == inv.width["all"].count
    # what the README reports for this set ("What the audit finds on the public 372-image set")
    assert (len(result.exact_duplicates), len(result.near_duplicates)) == (17, 17)
    assert len(result.conflicts_of("duplicate_labels")) == 14
    assert result.shortcut.ci_low > WARN_ABOVE and result.shortcut.warning is not None

    document = json.loads((tmp_path / "audit.json").read_text())
    assert len(document["exact_duplicates"]) == len(result.exact_duplicates)
    html = (tmp_path / "audit.html").read_text()
    assert html.count("<img ") >= sum(len(g.members) for g in groups)
