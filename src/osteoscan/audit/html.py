"""The audit as one self-contained HTML page, with a thumbnail of every image in every finding."""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING

from osteoscan.audit.conflicts import CONFLICT_KINDS
from osteoscan.audit.inventory import ALL
from osteoscan.audit.summary import DISCLAIMER, display_path

if TYPE_CHECKING:
    from osteoscan.audit.duplicates import DuplicateGroup
    from osteoscan.audit.result import AuditResult

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
.note { background: #fff4d6; padding: .6em 1em; border-left: 4px solid #e0a800; }
.warn { background: #fde2e1; padding: .6em 1em; border-left: 4px solid #c62828; }
.finding { border: 1px solid #ccc; border-radius: 6px; padding: .6em; margin: .8em 0; }
.finding.cross { border-color: #c62828; }
figure { display: inline-block; margin: .3em; text-align: center; vertical-align: top; }
figure img { background: #000; max-height: 160px; }
figcaption { font-size: 80%; max-width: 220px; word-break: break-all; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2em .5em; }
"""

_CONFLICT_TITLES = {
    "duplicate_labels": "The same image with different labels",
    "t_score_label": "T-score disagrees with the label (WHO classes)",
    "patient_classes": "One patient, images in different classes",
}


def render_html(result: AuditResult) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>osteoscan audit: {escape(result.source)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Data audit: {escape(result.source)}</h1>",
        f"<p class='note'>{escape(DISCLAIMER)}</p>",
        _shortcut(result),
        _inventory(result),
        _groups(result, result.exact_duplicates, "Exact duplicates (identical decoded pixels)"),
        _groups(
            result,
            result.near_duplicates,
            f"Near duplicates (detail similarity &ge; {result.near_threshold:.2f})",
        ),
        _conflicts(result),
        "</body></html>",
    ]
    return "\n".join(parts)


def _figure(result: AuditResult, index: int) -> str:
    caption = escape(f"{display_path(result, index)} [{result.labels[index]}]")
    preview = result.previews.get(index)
    if preview is None:
        return f"<figure><figcaption>{caption}</figcaption></figure>"
    data = base64.b64encode(preview).decode("ascii")
    return (
        f"<figure><img src='data:image/png;base64,{data}' alt='{caption}'>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _groups(result: AuditResult, groups: tuple[DuplicateGroup, ...], title: str) -> str:
    cross = sum(result.is_cross_class(g) for g in groups)
    out = [f"<h2>{title}: {len(groups)} group(s), {cross} across classes</h2>"]
    for group in groups:
        css = "finding cross" if result.is_cross_class(group) else "finding"
        head = "Across classes. " if result.is_cross_class(group) else ""
        if group.kind == "near":
            links = "; ".join(
                f"{escape(display_path(result, a))} ~ {escape(display_path(result, b))}: {s:.3f}"
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


def _inventory(result: AuditResult) -> str:
    inv = result.inventory
    rows = "".join(
        f"<tr><td>{escape(cls)}</td><td>{n}</td><td>{inv.readable_per_class.get(cls, 0)}</td></tr>"
        for cls, n in inv.files_per_class.items()
    )
    out = [
        "<h2>Inventory</h2>",
        f"<table><tr><th>class</th><th>images</th><th>readable</th></tr>{rows}</table>",
    ]
    for title, table in (
        ("Formats", inv.formats),
        ("Colour modes", inv.modes),
        ("Bit depths", inv.bit_depths),
    ):
        cells = "; ".join(
            f"{escape(cls)}: " + ", ".join(f"{escape(v)} {n}" for v, n in counts.items())
            for cls, counts in table.items()
            if cls != ALL
        )
        out.append(f"<p><b>{title}</b>: {cells}</p>")
    out.append(
        "<table><tr><th>measure</th><th>class</th><th>min</th><th>q1</th>"
        "<th>median</th><th>q3</th><th>max</th></tr>"
    )
    for title, spread in (
        ("width (px)", inv.width),
        ("height (px)", inv.height),
        ("aspect ratio", inv.aspect_ratio),
        ("file size (bytes)", inv.file_size),
    ):
        for cls, d in spread.items():
            out.append(
                f"<tr><td>{title}</td><td>{escape(cls)}</td><td>{d.min:g}</td><td>{d.q1:g}</td>"
                f"<td>{d.median:g}</td><td>{d.q3:g}</td><td>{d.max:g}</td></tr>"
            )
    out.append("</table>")
    out.append(f"<h3>Unreadable files and unusable rows: {len(inv.unreadable)}</h3><ul>")
    out += [f"<li>{escape(p.path)}: {escape(p.reason)}</li>" for p in inv.unreadable]
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
