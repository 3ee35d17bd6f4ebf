"""The audit's result as plain data, its JSON document, and writing the report files."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from osteoscan.audit.conflicts import CONFLICT_KINDS, Conflict
from osteoscan.audit.duplicates import DuplicateGroup
from osteoscan.audit.html import render_html
from osteoscan.audit.inventory import Inventory
from osteoscan.audit.shortcut import ShortcutResult
from osteoscan.audit.summary import DISCLAIMER, summary_text

JSON_NAME = "audit.json"
HTML_NAME = "audit.html"


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

    def is_cross_class(self, group: DuplicateGroup) -> bool:
        return len({self.labels[i] for i in group.members}) > 1

    def conflicts_of(self, kind: str) -> list[Conflict]:
        return [c for c in self.conflicts if c.kind == kind]

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
            "settings": {"near_threshold": self.near_threshold},
            "disclaimer": DISCLAIMER,
        }

    def summary(self) -> str:
        """The terminal summary."""
        return summary_text(self)

    def write(self, out_dir: Path) -> None:
        """Write audit.json and a self-contained audit.html into ``out_dir``, atomically."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(out_dir / JSON_NAME, json.dumps(self.to_dict(), indent=2))
        _write_atomic(out_dir / HTML_NAME, render_html(self))

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


def _write_atomic(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
