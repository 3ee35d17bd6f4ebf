"""What is in the dataset: files per class, unreadable files, formats, sizes, shapes."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from osteoscan.audit.fingerprint import Fingerprint
from osteoscan.data.records import ImageRecord, Problem

ALL = "all"  # key of the whole-dataset entry next to the per-class ones


@dataclass(frozen=True)
class Distribution:
    """Five-number summary of a measurement."""

    count: int
    min: float
    q1: float
    median: float
    q3: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        if len(values) == 0:
            return cls(0, *([float("nan")] * 5))
        q = np.quantile(np.asarray(values, dtype=np.float64), [0, 0.25, 0.5, 0.75, 1])
        return cls(len(values), *(round(float(v), 3) for v in q))


@dataclass(frozen=True)
class Inventory:
    files_per_class: dict[str, int]
    readable_per_class: dict[str, int]
    unreadable: tuple[Problem, ...]  # files and manifest rows that could not be used, and why
    formats: dict[str, dict[str, int]]  # class (and ALL) -> value -> count
    modes: dict[str, dict[str, int]]
    bit_depths: dict[str, dict[str, int]]
    width: dict[str, Distribution]  # class (and ALL) -> distribution, in pixels
    height: dict[str, Distribution]
    aspect_ratio: dict[str, Distribution]  # width / height
    file_size: dict[str, Distribution]  # bytes
    unlisted: tuple[str, ...] = ()  # images beside a manifest that it does not list (not audited)

    @property
    def n_files(self) -> int:
        return sum(self.files_per_class.values())

    def to_dict(self) -> dict:
        out = asdict(self)
        out["unreadable"] = [{"path": p.path, "reason": p.reason} for p in self.unreadable]
        out["n_files"] = self.n_files
        return out


def take_inventory(
    records: Sequence[ImageRecord],
    fingerprints: Sequence[Fingerprint],
    problems: Sequence[Problem] = (),
    unlisted: Sequence[Path] = (),
) -> Inventory:
    """Summarise ``records`` (with their fingerprints, same order), the loader's problems and
    the image files its manifest does not list."""
    classes = [str(r.label) for r in records]
    readable = [(c, fp) for c, fp in zip(classes, fingerprints, strict=True) if fp.ok]
    unreadable = list(problems) + [Problem(fp.path, fp.error) for fp in fingerprints if not fp.ok]

    def counts(field: str) -> dict[str, dict[str, int]]:
        table: dict[str, Counter] = defaultdict(Counter)
        for cls, fp in readable:
            value = str(getattr(fp, field))
            table[cls][value] += 1
            table[ALL][value] += 1
        return {k: dict(sorted(v.items())) for k, v in sorted(table.items())}

    def spread(measure) -> dict[str, Distribution]:
        values: dict[str, list[float]] = defaultdict(list)
        for cls, fp in readable:
            values[cls].append(measure(fp))
            values[ALL].append(measure(fp))
        return {k: Distribution.of(v) for k, v in sorted(values.items())}

    return Inventory(
        files_per_class=dict(sorted(Counter(classes).items())),
        readable_per_class=dict(sorted(Counter(c for c, _ in readable).items())),
        unreadable=tuple(unreadable),
        formats=counts("format"),
        modes=counts("mode"),
        bit_depths=counts("bit_depth"),
        width=spread(lambda fp: fp.width),
        height=spread(lambda fp: fp.height),
        aspect_ratio=spread(lambda fp: fp.width / fp.height),
        file_size=spread(lambda fp: fp.file_size),
        unlisted=tuple(str(path) for path in unlisted),
    )
