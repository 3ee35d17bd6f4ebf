"""Datasets as plain records: which file, which label, which T-score, which patient.

Two layouts are read:

* a folder per class, ``DATA/<class>/*.png`` (class names: normal, osteopenia, osteoporosis);
* a CSV manifest with a ``path`` column plus ``label`` and/or ``t_score``, optional ``patient_id``;
  paths are relative to the CSV. A folder holding ``manifest.csv`` is read through the manifest.

Files and rows that cannot be used are kept as :class:`Problem` entries, never silently dropped:
unsupported or unreadable files, broken or looping symbolic links, folders that cannot be read,
images lying outside the class folders. A manifest decides what is used; image files beside it
that it does not list are counted in :attr:`Dataset.unlisted` and a warning.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import logging
import math
import os
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from osteoscan.data.decode import is_supported, unsupported_reason
from osteoscan.data.labels import ALL_CLASSES, Task, normalise_class_name, who_class
from osteoscan.errors import BadManifestError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
MAX_LISTED = 10  # problems quoted in an error message; the rest are counted


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
    """A file, folder or row that was skipped, and why. ``reason`` does not repeat ``path``."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def list_problems(problems: Sequence[Problem], limit: int = MAX_LISTED) -> str:
    """The first ``limit`` problems, one indented line each, then how many more: for messages."""
    lines = [f"  {problem}" for problem in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


@dataclass
class Dataset:
    """Records read from one source, plus the problems found while reading it.

    ``unlisted``: image files in a manifest's folder that the manifest does not list (not used).
    """

    source: Path
    records: list[ImageRecord]
    problems: list[Problem] = field(default_factory=list)
    unlisted: list[Path] = field(default_factory=list)

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
            skipped = (
                f"; {len(self.problems)} file(s) or row(s) were skipped:\n"
                f"{list_problems(self.problems)}"
                if self.problems
                else ""
            )
            raise BadManifestError(
                f"{self.source}: no images of class {', '.join(empty)} for the {task.name} task "
                f"(found {self.class_counts()}); every class needs images{skipped}"
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
    try:
        entries = _entries(root)
    except OSError as exc:
        raise BadManifestError(f"{root}: {_folder_reason(exc)}") from None
    class_dirs, problems, loose = [], [], []
    for path, kind in entries:
        if kind == "dir":
            class_dirs.append(path)
        elif isinstance(kind, Problem):
            problems.append(kind)
        elif kind == "file" and is_supported(path):
            loose.append(path)
    unknown = [d.name for d in class_dirs if normalise_class_name(d.name) is None]
    if unknown:
        raise BadManifestError(
            f"{root}: folder(s) {', '.join(unknown)} are not class names; "
            f"name class folders {', '.join(ALL_CLASSES)} or give a CSV manifest"
        )
    folders = ", ".join(f"{name}/" for name in ALL_CLASSES)
    if not class_dirs:
        found = (
            f"{len(loose)} image(s) lie directly in it: move them into class folders ({folders})"
            f" or list them in a {MANIFEST_NAME}"
            if loose
            else f"expected class folders ({folders}) or a {MANIFEST_NAME}"
        )
        raise BadManifestError(f"{root}: no class folders found; {found}")
    outside = f"image lies outside the class folders, so it has no class; move it into {folders}"
    problems += [Problem(str(path), outside) for path in loose]
    records: list[ImageRecord] = []
    for class_dir in class_dirs:
        label = normalise_class_name(class_dir.name)
        files, found = _scan(class_dir)
        problems += found
        for path in files:
            if is_supported(path):
                records.append(ImageRecord(path=path, label=label))
            else:
                problems.append(Problem(str(path), unsupported_reason(path)))
    return Dataset(root, records, problems)


def _entries(folder: Path) -> list[tuple[Path, str | Problem]]:
    """The visible entries of ``folder``, sorted, each a "dir", a "file" or the Problem that
    makes it unusable (a broken or looping symbolic link, a device). Symbolic links count as
    what they point to. Raises OSError when ``folder`` itself cannot be read."""
    out: list[tuple[Path, str | Problem]] = []
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue  # hidden files and folders (.thumbnails, .DS_Store, ...)
        path = Path(entry.path)
        try:
            mode = entry.stat().st_mode  # follows symbolic links
        except OSError as exc:
            out.append((path, Problem(str(path), _unreachable_reason(path, exc))))
            continue
        if stat.S_ISDIR(mode):
            out.append((path, "dir"))
        elif stat.S_ISREG(mode):
            out.append((path, "file"))
        else:
            out.append((path, Problem(str(path), "not a regular file or folder; remove it")))
    return out


def _unreachable_reason(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (it leads back to itself); fix or remove the link"
    if isinstance(exc, FileNotFoundError) and path.is_symlink():
        return (
            f"broken symbolic link (its target {os.readlink(path)} does not exist); "
            "fix or remove the link"
        )
    return f"cannot read it ({exc.strerror or exc}); check it or remove it"


def _scan(folder: Path) -> tuple[list[Path], list[Problem]]:
    """Every visible file below ``folder`` (sorted) and the problems met on the way: folders
    that cannot be read, broken or looping symbolic links, links to folders (not followed, so a
    link cannot loop a scan)."""
    files: list[Path] = []
    problems: list[Problem] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = _entries(current)
        except OSError as exc:
            problems.append(Problem(str(current), _folder_reason(exc)))
            continue
        for path, kind in entries:
            if isinstance(kind, Problem):
                problems.append(kind)
            elif kind == "file":
                files.append(path)
            elif path.is_symlink():
                reason = (
                    "symbolic link to a folder, which is not followed (a link can loop); "
                    "link the image files themselves or copy the folder"
                )
                problems.append(Problem(str(path), reason))
            else:
                pending.append(path)
    return sorted(files), sorted(problems, key=lambda p: p.path)


def _folder_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return (
            "cannot read this folder: permission denied; give read access (chmod -R u+rX) "
            "or move the images elsewhere"
        )
    return f"cannot read this folder ({exc.strerror or exc}); check the disk or copy it again"


def _read_manifest(csv_path: Path) -> Dataset:
    csv_path = csv_path.resolve()  # records are absolute; manifest_hash relativises them to this
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = set(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadManifestError(
            f"{csv_path}: cannot read CSV ({exc}); save it as a UTF-8 CSV file you can read"
        ) from exc
    columns = {c.strip().lower() for c in columns if c}
    if "path" not in columns or not ({"label", "t_score"} & columns):
        raise BadManifestError(
            f"{csv_path}: needs a 'path' column and a 'label' or 't_score' column "
            f"(found: {', '.join(sorted(columns)) or 'no columns'})"
        )
    records, problems, listed = [], [], set()
    for line, row in enumerate(rows, start=2):
        if None in row:  # csv.DictReader files surplus fields under None
            reason = "more fields than the header; quote paths that contain commas"
            problems.append(Problem(f"{csv_path}:{line}", reason))
            continue
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if row.get("path"):
            listed.add(os.path.normpath(csv_path.parent / row["path"]))
        try:
            records.append(_parse_row(row, csv_path.parent))
        except BadManifestError as exc:
            problems.append(Problem(f"{csv_path}:{line}", str(exc)))
    listed |= {str(r.path) for r in records}
    unlisted = _unlisted(csv_path, listed) if csv_path.name == MANIFEST_NAME else []
    return Dataset(csv_path, records, problems, unlisted)


def _unlisted(csv_path: Path, listed: set[str]) -> list[Path]:
    """Image files below the manifest's folder that it does not list; logged as a warning."""
    files, _ = _scan(csv_path.parent)  # the manifest decides: unreadable corners are not ours
    unlisted = [
        path
        for path in files
        if str(path) not in listed and str(path.resolve()) not in listed and is_supported(path)
    ]
    if unlisted:
        log.warning(
            "%s: %d image file(s) in its folder are not listed in it, so they are not used "
            "(e.g. %s); `osteoscan audit %s` lists them all (Dataset.unlisted from Python)",
            csv_path,
            len(unlisted),
            unlisted[0],
            csv_path.parent,
        )
    return unlisted


def _parse_row(row: dict[str, str], base: Path) -> ImageRecord:
    if not row.get("path"):
        raise BadManifestError("empty 'path'; give the image's path or remove the row")
    given = Path(row["path"])
    try:
        path = given if given.is_absolute() else (base / given).resolve()
    except RuntimeError:  # Python 3.11 resolve() on a symbolic link loop
        raise BadManifestError(
            f"{base / given} is a symbolic link loop; fix the link or remove the row"
        ) from None
    if not path.is_file():
        raise BadManifestError(f"file {path} does not exist; correct the path or remove the row")
    if not is_supported(path):
        raise BadManifestError(f"{path}: {unsupported_reason(path)}")
    t_score = None
    if row.get("t_score"):
        try:
            t_score = float(row["t_score"])
        except ValueError:
            raise BadManifestError(
                f"t_score {row['t_score']!r} is not a number; write it like -2.7 or leave it empty"
            ) from None
        if not math.isfinite(t_score) or not -10.0 <= t_score <= 10.0:
            raise BadManifestError(
                f"t_score {row['t_score']!r} is outside [-10, 10]; correct it or leave it empty"
            )
    label = None
    if row.get("label"):
        label = normalise_class_name(row["label"])
        if label is None:
            raise BadManifestError(
                f"label {row['label']!r} is not one of {', '.join(ALL_CLASSES)}; use one of "
                "them, or leave it empty and give a t_score"
            )
    if label is None and t_score is not None:
        label = who_class(t_score)
    if label is None:
        raise BadManifestError("neither a label nor a t_score is given; give one or remove the row")
    return ImageRecord(
        path=path, label=label, t_score=t_score, patient_id=row.get("patient_id") or None
    )
