"""The audit as readable terminal text."""

from __future__ import annotations

from collections.abc import Sequence

from osteoscan.audit.conflicts import DUPLICATE_LABELS, PATIENT_CLASSES, T_SCORE_LABEL
from osteoscan.audit.duplicates import DuplicateGroup
from osteoscan.audit.inventory import ALL, Distribution
from osteoscan.audit.report import HTML_NAME, JSON_NAME
from osteoscan.audit.result import DISCLAIMER, AuditResult
from osteoscan.audit.shortcut import ShortcutResult

MAX_LINES = 20  # per section; the JSON and HTML list everything


def summary_text(result: AuditResult) -> str:
    """What the audit found, as lines for a terminal (at most MAX_LINES findings per section)."""
    lines = [f"Audit of {result.source}", DISCLAIMER, ""]
    lines += _inventory_lines(result)
    lines += _group_lines(result, result.exact_duplicates, "Exact duplicates (identical pixels)")
    title = f"Near duplicates (detail similarity >= {result.near_threshold:.2f})"
    lines += _group_lines(result, result.near_duplicates, title)
    lines += _conflict_lines(result)
    lines += _shortcut_lines(result)
    lines += _roi_lines(result)
    return "\n".join(lines)


def _inventory_lines(result: AuditResult) -> list[str]:
    inv = result.inventory
    per_class = ", ".join(f"{k} {v}" for k, v in inv.files_per_class.items())
    readable = sum(inv.readable_per_class.values())
    lines = [
        f"Inventory: {inv.n_files} images ({per_class}); {readable} readable, "
        f"{inv.n_files - readable} unreadable; {len(inv.unreadable)} problem(s) in total",
    ]
    for problem in inv.unreadable[:MAX_LINES]:
        lines.append(f"  skipped: {problem}")
    lines += _more(len(inv.unreadable))
    if inv.unlisted:
        lines.append(
            f"  {len(inv.unlisted)} image file(s) beside the manifest are not listed in it, "
            "so they are neither audited nor trained on:"
        )
        lines += [f"  not listed: {path}" for path in inv.unlisted[:MAX_LINES]]
        lines += _more(len(inv.unlisted))
    for title, table in (
        ("formats", inv.formats),
        ("colour modes", inv.modes),
        ("bit depths", inv.bit_depths),
    ):
        lines.append(
            f"  {title}: " + " | ".join(_counts(k, v) for k, v in table.items() if k != ALL)
        )
    for title, spread, unit in (
        ("width", inv.width, "px"),
        ("height", inv.height, "px"),
        ("aspect ratio (w/h)", inv.aspect_ratio, ""),
        ("file size", inv.file_size, "KB"),
    ):
        scale = 1024 if unit == "KB" else 1
        parts = [_spread(k, d, scale) for k, d in spread.items()]
        lines.append(
            f"  {title}{f' ({unit})' if unit else ''}, median [min-max]: " + " | ".join(parts)
        )
    return lines + [""]


def _counts(cls: str, counts: dict[str, int]) -> str:
    return f"{cls}: " + ", ".join(f"{value} {n}" for value, n in counts.items())


def _spread(cls: str, dist: Distribution, scale: float) -> str:
    def fmt(value: float) -> str:
        return f"{value / scale:.3g}" if scale != 1 or value < 10 else f"{value:.0f}"

    return f"{cls} {fmt(dist.median)} [{fmt(dist.min)}-{fmt(dist.max)}]"


def _group_lines(result: AuditResult, groups: Sequence[DuplicateGroup], title: str) -> list[str]:
    cross = sum(result.is_cross_class(g) for g in groups)
    files = sum(len(g.members) for g in groups)
    lines = [f"{title}: {len(groups)} group(s), {files} files, {cross} across classes"]
    for group in groups[:MAX_LINES]:
        members = " = ".join(
            f"{result.display_path(i)} [{result.labels[i]}]" for i in group.members
        )
        flag = "  ACROSS CLASSES" if result.is_cross_class(group) else ""
        similarity = "" if group.kind == "exact" else f"{group.similarity:.3f}  "
        lines.append(f"  {similarity}{members}{flag}")
    return lines + _more(len(groups)) + [""]


def _conflict_lines(result: AuditResult) -> list[str]:
    counts = {
        kind: len(result.conflicts_of(kind))
        for kind in (DUPLICATE_LABELS, T_SCORE_LABEL, PATIENT_CLASSES)
    }
    lines = [
        f"Label conflicts: {counts[DUPLICATE_LABELS]} duplicate group(s) with different labels, "
        f"{counts[T_SCORE_LABEL]} T-score/label mismatch(es), "
        f"{counts[PATIENT_CLASSES]} patient(s) with images in different classes"
    ]
    for conflict in result.conflicts[:MAX_LINES]:
        where = ", ".join(result.display_path(i) for i in conflict.members)
        lines.append(f"  {conflict.detail}: {where}")
    return lines + _more(len(result.conflicts)) + [""]


def _shortcut_lines(result: AuditResult) -> list[str]:
    shortcut = result.shortcut
    if shortcut.auc is None:
        return [f"Shortcut check: not run ({shortcut.note})"]
    lines = [
        f"Shortcut check: label predicted from file properties alone (size, format, colour mode, "
        f"borders) with cross-validated AUC {shortcut.auc:.2f} "
        f"(95% CI {shortcut.ci_low:.2f}-{shortcut.ci_high:.2f}; chance 0.50; "
        f"{shortcut.n_images} images, {shortcut.n_folds} folds)"
    ]
    if shortcut.warning:
        lines.append(f"  {shortcut.warning}")
    else:
        cues = ", ".join(f"{name} {auc:.2f}" for name, auc in shortcut.strongest)
        lines.append(f"  no strong shortcut found; strongest single cues: {cues}")
    return lines


def _auc_text(shortcut: ShortcutResult) -> str:
    if shortcut.auc is None:
        return f"not run ({shortcut.note})"
    return (
        f"AUC {shortcut.auc:.2f} (95% CI {shortcut.ci_low:.2f}-{shortcut.ci_high:.2f}), "
        f"{shortcut.n_images} samples"
    )


def _roi_lines(result: AuditResult) -> list[str]:
    roi = result.roi
    if roi is None:
        return []
    lines = [
        "",
        f"Knee ROI: knees found in {roi.n_found} of {roi.n_images} readable images "
        f"({roi.n_crops} crops); {len(roi.failures)} without a knee",
    ]
    for index, reason in roi.failures[:MAX_LINES]:
        lines.append(f"  {result.display_path(index)}: {reason}")
    lines += _more(len(roi.failures))
    lines += [
        "Shortcut check, side by side (chance 0.50):",
        f"  whole images (file properties): {_auc_text(result.shortcut)}",
        f"  knee crops (crop scale, framing, edge exposure): {_auc_text(roi.shortcut)}",
    ]
    if roi.shortcut.warning:
        lines.append(f"  {roi.shortcut.warning}")
    return lines


def _more(total: int) -> list[str]:
    return (
        [f"  ... and {total - MAX_LINES} more (see {JSON_NAME} / {HTML_NAME})"]
        if total > MAX_LINES
        else []
    )
