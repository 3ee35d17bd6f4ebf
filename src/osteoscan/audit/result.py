"""The audit's result as plain data, and its JSON document.

Nothing here renders or writes: :mod:`osteoscan.audit.summary` turns a result into terminal text,
:mod:`osteoscan.audit.html` into a page, and :mod:`osteoscan.audit.report` writes the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from osteoscan.audit.conflicts import CONFLICT_KINDS, Conflict
from osteoscan.audit.duplicates import DuplicateGroup
from osteoscan.audit.inventory import Inventory
from osteoscan.audit.roi_check import RoiAudit
from osteoscan.audit.shortcut import ShortcutResult

DISCLAIMER = (
    "This audit screens a dataset for problems before training; it does not diagnose anyone, "
    "and a clean audit does not make a model accurate."
)


@dataclass(frozen=True)
class AuditResult:
    """Everything the audit found. Indices in groups and conflicts point into ``paths``."""

    source: str
    paths: tuple[str, ...]
    labels: tuple[str | None, ...]
    t_scores: tuple[float | None, ...]
    patient_ids: tuple[str | None, ...]
    inventory: Inventory
    exact_duplicates: tuple[DuplicateGroup, ...]
    near_duplicates: tuple[DuplicateGroup, ...]
    conflicts: tuple[Conflict, ...]
    shortcut: ShortcutResult
    near_threshold: float
    previews: Mapping[int, bytes] = field(default_factory=dict, repr=False)  # PNG per finding
    roi: RoiAudit | None = None  # with --roi knee: knee failures and the crops' shortcut check

    def is_cross_class(self, group: DuplicateGroup) -> bool:
        return len({self.labels[i] for i in group.members}) > 1

    def conflicts_of(self, kind: str) -> list[Conflict]:
        return [c for c in self.conflicts if c.kind == kind]

    def display_path(self, index: int) -> str:
        """The path of record ``index`` relative to the dataset folder when possible."""
        path = Path(self.paths[index])
        root = Path(self.source)
        root = root if root.is_dir() else root.parent
        try:
            return str(path.relative_to(root))
        except ValueError:
            return str(path)

    def to_dict(self) -> dict:
        """The JSON document: inventory, exact_duplicates, near_duplicates, conflicts, shortcut."""
        return {
            "source": self.source,
            "n_images": len(self.paths),
            "inventory": self.inventory.to_dict(),
            "exact_duplicates": [self._group_dict(g) for g in self.exact_duplicates],
            "near_duplicates": [self._group_dict(g) for g in self.near_duplicates],
            "conflicts": {
                kind: [
                    {"members": [self._member(i) for i in c.members], "detail": c.detail}
                    for c in self.conflicts_of(kind)
                ]
                for kind in CONFLICT_KINDS
            },
            "shortcut": self.shortcut.to_dict(),
            **({} if self.roi is None else {"roi": self.roi.to_dict(self.paths)}),
            "settings": {"near_threshold": self.near_threshold},
            "disclaimer": DISCLAIMER,
        }

    def _member(self, index: int) -> dict:
        return {
            "path": self.paths[index],
            "label": self.labels[index],
            "t_score": self.t_scores[index],
            "patient_id": self.patient_ids[index],
        }

    def _group_dict(self, group: DuplicateGroup) -> dict:
        out = {
            "members": [self._member(i) for i in group.members],
            "similarity": round(group.similarity, 4),
            "cross_class": self.is_cross_class(group),
        }
        if group.kind == "near":
            out["pairs"] = [
                {"a": self.paths[a], "b": self.paths[b], "similarity": round(s, 4)}
                for a, b, s in group.pairs
            ]
        return out
