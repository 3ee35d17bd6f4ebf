"""The audit as one self-contained HTML page, with a thumbnail of every image in every finding.

The page shell, style sheet, tables and embedded figures are osteoscan's shared ones
(:mod:`osteoscan.htmlpage`); the audit adds its own statement of what an audit is not.
"""

from __future__ import annotations

from html import escape

from osteoscan.audit.conflicts import CONFLICT_KINDS
from osteoscan.audit.duplicates import DuplicateGroup
from osteoscan.audit.inventory import ALL
from osteoscan.audit.result import DISCLAIMER, AuditResult
from osteoscan.htmlpage import page, png_figure, table

_CONFLICT_TITLES = {
    "duplicate_labels": "The same image with different labels",
    "t_score_label": "T-score disagrees with the label (WHO classes)",
    "patient_classes": "One patient, images in different classes",
}


def render_html(result: AuditResult) -> str:
    """The whole page: shortcut check, inventory, duplicate groups, label conflicts."""
    return page(
        f"Data audit: {result.source}",
        [
            f"<p class='note'>{escape(DISCLAIMER)}</p>",
            _shortcut(result),
            _roi(result),
            _inventory(result),
            _groups(result, result.exact_duplicates, "Exact duplicates (identical decoded pixels)"),
            _groups(
                result,
                result.near_duplicates,
                f"Near duplicates (detail similarity &ge; {result.near_threshold:.2f})",
            ),
            _conflicts(result),
        ],
    )


def _figure(result: AuditResult, index: int) -> str:
    caption = f"{result.display_path(index)} [{result.labels[index]}]"
    preview = result.previews.get(index)
    if preview is None:  # unreadable: no thumbnail to show
        return f"<figure><figcaption>{escape(caption)}</figcaption></figure>"
    return png_figure(preview, caption)


def _groups(result: AuditResult, groups: tuple[DuplicateGroup, ...], title: str) -> str:
    cross = sum(result.is_cross_class(g) for g in groups)
    out = [f"<h2>{title}: {len(groups)} group(s), {cross} across classes</h2>"]
    for group in groups:
        css = "finding cross" if result.is_cross_class(group) else "finding"
        head = "Across classes. " if result.is_cross_class(group) else ""
        if group.kind == "near":
            links = "; ".join(
                f"{escape(result.display_path(a))} ~ {escape(result.display_path(b))}: {s:.3f}"
                for a, b, s in group.pairs
            )
            head += f"Similarity of each linked pair: {links}"
        figures = "".join(_figure(result, i) for i in group.members)
        out.append(f"<div class='{css}'><p>{head}</p>{figures}</div>")
    return "\n".join(out)


def _conflicts(result: AuditResult) -> str:
    out = [f"<h2>Label conflicts: {len(result.conflicts)}</h2>"]
    for kind in CONFLICT_KINDS:
        found = result.conflicts_of(kind)
        out.append(f"<h3>{_CONFLICT_TITLES[kind]}: {len(found)}</h3>")
        for conflict in found:
            figures = "".join(_figure(result, i) for i in conflict.members)
            out.append(f"<div class='finding'><p>{escape(conflict.detail)}</p>{figures}</div>")
    return "\n".join(out)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _inventory(result: AuditResult) -> str:
    inv = result.inventory
    out = [
        "<h2>Inventory</h2>",
        table(
            ("class", "images", "readable"),
            [(c, n, inv.readable_per_class.get(c, 0)) for c, n in inv.files_per_class.items()],
        ),
    ]
    for title, counts in (
        ("Formats", inv.formats),
        ("Colour modes", inv.modes),
        ("Bit depths", inv.bit_depths),
    ):
        cells = "; ".join(
            f"{escape(cls)}: " + ", ".join(f"{escape(v)} {n}" for v, n in values.items())
            for cls, values in counts.items()
            if cls != ALL
        )
        out.append(f"<p><b>{title}</b>: {cells}</p>")
    rows = [
        (title, cls, *(_number(v) for v in (d.min, d.q1, d.median, d.q3, d.max)))
        for title, spread in (
            ("width (px)", inv.width),
            ("height (px)", inv.height),
            ("aspect ratio", inv.aspect_ratio),
            ("file size (bytes)", inv.file_size),
        )
        for cls, d in spread.items()
    ]
    out.append(table(("measure", "class", "min", "q1", "median", "q3", "max"), rows))
    out.append(f"<h3>Skipped files, folders and manifest rows: {len(inv.unreadable)}</h3><ul>")
    out += [f"<li>{escape(str(p))}</li>" for p in inv.unreadable]
    out.append("</ul>")
    if inv.unlisted:
        out.append(
            f"<h3>Image files beside the manifest that it does not list (neither audited nor "
            f"trained on): {len(inv.unlisted)}</h3><ul>"
        )
        out += [f"<li>{escape(path)}</li>" for path in inv.unlisted]
        out.append("</ul>")
    return "\n".join(out)


def _shortcut(result: AuditResult) -> str:
    shortcut = result.shortcut
    if shortcut.auc is None:
        return f"<h2>Shortcut check</h2><p>Not run: {escape(str(shortcut.note))}</p>"
    cues = ", ".join(f"{escape(n)} {a:.2f}" for n, a in shortcut.strongest)
    text = (
        f"<p>Label predicted from file properties alone (no anatomy): cross-validated AUC "
        f"{shortcut.auc:.2f} (95% CI {shortcut.ci_low:.2f}&ndash;{shortcut.ci_high:.2f}; "
        f"chance 0.50), {shortcut.n_images} images. Strongest single cues: {cues}.</p>"
    )
    if shortcut.warning:
        text += f"<p class='warn'>{escape(shortcut.warning)}</p>"
    return f"<h2>Shortcut check</h2>{text}"


def _roi(result: AuditResult) -> str:
    """Knee ROI: failures, and the shortcut check on whole images and on crops side by side."""
    roi = result.roi
    if roi is None:
        return ""
    rows = []
    for unit, shortcut in (
        ("whole images (file properties)", result.shortcut),
        ("knee crops (crop scale, framing, edge exposure)", roi.shortcut),
    ):
        if shortcut.auc is None:
            rows.append([unit, "not run", "", str(shortcut.n_images), str(shortcut.note)])
            continue
        cues = ", ".join(f"{n} {a:.2f}" for n, a in shortcut.strongest)
        interval = f"{shortcut.ci_low:.2f}-{shortcut.ci_high:.2f}"
        rows.append([unit, f"{shortcut.auc:.2f}", interval, str(shortcut.n_images), cues])
    out = [
        f"<h2>Knee ROI: knees found in {roi.n_found} of {roi.n_images} readable images "
        f"({roi.n_crops} crops)</h2>",
        "<p>Shortcut check on what a model sees, side by side (chance 0.50):</p>",
        table(["unit", "AUC", "95% CI", "samples", "strongest single cues"], rows),
    ]
    if roi.shortcut.warning:
        out.append(f"<p class='warn'>{escape(roi.shortcut.warning)}</p>")
    if roi.failures:
        out.append(f"<h3>No knee found: {len(roi.failures)}</h3><ul>")
        out += [
            f"<li>{escape(result.display_path(i))}: {escape(reason)}</li>"
            for i, reason in roi.failures
        ]
        out.append("</ul>")
    return "\n".join(out)
