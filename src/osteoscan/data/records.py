"""Datasets as plain records: which file, which label, which T-score, which patient.

Two layouts are read:

* a folder per class, ``DATA/<class>/*.png`` (class names: normal, osteopenia, osteoporosis);
* a CSV manifest with a ``path`` column plus ``label`` and/or ``t_score``, optional ``patient_id``;
  paths are relative to the CSV. A folder holding ``manifest.csv`` is read through the manifest.

Rows that cannot be used are kept as :class:`Problem` entries, never silently dropped.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from osteoscan.data.decode import SUPPORTED_SUFFIXES, is_supported
from osteoscan.data.labels import ALL_CLASSES, Task, normalise_class_name, who_class
from osteoscan.errors import BadManifestError

MANIFEST_NAME = "manifest.csv"


@dataclass(frozen=True)
class ImageRecord:
    """One image and what is known about it. ``label`` is the given (or WHO-derived) class."""

    path: Path
    label: str | None
    t_score: float | None = None
    patient_id: str | None = None

    @property
    def who_label(self) -> str | None:
        return None if self.t_score is None else who_class(self.t_score)


@dataclass(frozen=True)
class Problem:
    """A file or row that was skipped, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Dataset:
    """Records read from one source, plus the problems found while reading it."""

    source: Path
    records: list[ImageRecord]
    problems: list[Problem] = field(default_factory=list)

    def class_counts(self) -> dict[str, int]:
        return dict(Counter(r.label for r in self.records))

    def manifest_hash(self) -> str:
        """sha256 over (relative path, label, t_score, patient_id): identifies the training set."""
        digest = hashlib.sha256()
        root = self.source if self.source.is_dir() else self.source.parent
        for rec in sorted(self.records, key=lambda r: str(r.path)):
            try:
                rel = rec.path.relative_to(root)
            except ValueError:
                rel = rec.path
            digest.update(f"{rel}|{rec.label}|{rec.t_score}|{rec.patient_id}\n".encode())
        return digest.hexdigest()

    def for_task(self, task: Task) -> tuple[list[ImageRecord], list[int]]:
        """Records kept by ``task`` and their class indices; raises if a class is empty."""
        kept, targets = [], []
        for rec in self.records:
            index = task.target(rec.label) if rec.label is not None else None
            if index is not None:
                kept.append(rec)
                targets.append(index)
        counts = Counter(targets)
        empty = [name for i, name in enumerate(task.class_names) if counts[i] == 0]
        if empty:
            raise BadManifestError(
                f"{self.source}: no images of class {', '.join(empty)} for the {task.name} task "
                f"(found {self.class_counts()}); every class needs images"
            )
        return kept, targets


def load_dataset(source: Path) -> Dataset:
    """Read a class-folder dataset, a folder with ``manifest.csv``, or a CSV manifest."""
    source = Path(source)
    if source.is_dir():
        manifest = source / MANIFEST_NAME
        return _read_manifest(manifest) if manifest.is_file() else _read_folders(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _read_manifest(source)
    if not source.exists():
        raise BadManifestError(f"{source}: no such folder or CSV file")
    raise BadManifestError(f"{source}: expected a folder of class folders or a .csv manifest")


def _read_folders(root: Path) -> Dataset:
    records: list[ImageRecord] = []
    problems: list[Problem] = []
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [d.name for d in class_dirs if normalise_class_name(d.name) is None]
    if unknown:
        raise BadManifestError(
            f"{root}: folder(s) {', '.join(unknown)} are not class names; "
            f"name class folders {', '.join(ALL_CLASSES)} or give a CSV manifest"
        )
    if not class_dirs:
        raise BadManifestError(
            f"{root}: no class folders found; expected {root}/normal/, {root}/osteoporosis/, ... "
            f"or a {MANIFEST_NAME}"
        )
    for class_dir in class_dirs:
        label = normalise_class_name(class_dir.name)
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            if any(part.startswith(".") for part in path.relative_to(class_dir).parts):
                continue  # hidden files and anything inside hidden folders (.thumbnails, ...)
            if is_supported(path):
                records.append(ImageRecord(path=path, label=label))
            else:
                problems.append(Problem(str(path), _unsupported_reason(path)))
    return Dataset(root, records, problems)


def _unsupported_reason(path: Path) -> str:
    return f"unsupported file type {path.suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}"


def _read_manifest(csv_path: Path) -> Dataset:
    csv_path = csv_path.resolve()  # records are absolute; manifest_hash relativises them to this
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = set(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadManifestError(f"{csv_path}: cannot read CSV ({exc})") from exc
    columns = {c.strip().lower() for c in columns if c}
    if "path" not in columns or not ({"label", "t_score"} & columns):
        raise BadManifestError(
            f"{csv_path}: needs a 'path' column and a 'label' or 't_score' column "
            f"(found: {', '.join(sorted(columns)) or 'no columns'})"
        )
    records, problems = [], []
    for line, row in enumerate(rows, start=2):
        if None in row:  # csv.DictReader files surplus fields under None
            reason = "more fields than the header; quote paths that contain commas"
            problems.append(Problem(f"{csv_path}:{line}", reason))
            continue
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        try:
            records.append(_parse_row(row, csv_path.parent))
        except BadManifestError as exc:
            problems.append(Problem(f"{csv_path}:{line}", str(exc)))
    return Dataset(csv_path, records, problems)


def _parse_row(row: dict[str, str], base: Path) -> ImageRecord:
    if not row.get("path"):
        raise BadManifestError("empty 'path'")
    path = (
        (base / row["path"]).resolve() if not Path(row["path"]).is_absolute() else Path(row["path"])
    )
    if not path.is_file():
        raise BadManifestError(f"file {path} does not exist")
    if not is_supported(path):
        raise BadManifestError(f"{path}: {_unsupported_reason(path)}")
    t_score = None
    if row.get("t_score"):
        try:
            t_score = float(row["t_score"])
        except ValueError:
            raise BadManifestError(f"t_score {row['t_score']!r} is not a number") from None
        if not math.isfinite(t_score) or not -10.0 <= t_score <= 10.0:
            raise BadManifestError(f"t_score {row['t_score']!r} is outside [-10, 10]")
    label = None
    if row.get("label"):
        label = normalise_class_name(row["label"])
        if label is None:
            raise BadManifestError(f"label {row['label']!r} is not one of {', '.join(ALL_CLASSES)}")
    if label is None and t_score is not None:
        label = who_class(t_score)
    if label is None:
        raise BadManifestError("neither a label nor a t_score is given")
    return ImageRecord(
        path=path, label=label, t_score=t_score, patient_id=row.get("patient_id") or None
    )
