"""The shell shared by osteoscan's self-contained HTML pages (audit, study report): one style
sheet, the screening notice, tables and embedded PNG figures. No external resource is linked, so
every page works offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from html import escape
from typing import Any

SCREENING_NOTICE = (
    "osteoscan is a research screening aid. Its output is not a diagnosis; osteoporosis is "
    "diagnosed by bone densitometry (DXA) and clinical assessment."
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
.note { background: #fff4d6; padding: .6em 1em; border-left: 4px solid #e0a800; }
.warn { background: #fde2e1; padding: .6em 1em; border-left: 4px solid #c62828; }
.finding { border: 1px solid #ccc; border-radius: 6px; padding: .6em; margin: .8em 0; }
.finding.cross { border-color: #c62828; }
figure { display: inline-block; margin: .3em; text-align: center; vertical-align: top; }
figure img { background: #000; max-height: 160px; }
figure.plot img { background: #fff; max-height: none; max-width: 100%; }
figcaption { font-size: 80%; max-width: 220px; word-break: break-all; }
figure.plot figcaption { max-width: none; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2em .5em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def page(title: str, body: Sequence[str] | str) -> str:
    """A whole HTML document: ``title`` as heading, the screening notice, then ``body``."""
    content = body if isinstance(body, str) else "\n".join(body)
    return "\n".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{escape(title)}</title>",
            f"<style>{STYLE}</style></head><body>",
            f"<h1>{escape(title)}</h1>",
            f"<p class='note'>{escape(SCREENING_NOTICE)}</p>",
            content,
            "</body></html>",
        ]
    )


def png_figure(png: bytes, caption: str, *, plot: bool = False) -> str:
    """An embedded PNG (``data:`` URI) with a caption; ``plot`` styles it as a full-width chart."""
    data = base64.b64encode(png).decode("ascii")
    cls = " class='plot'" if plot else ""
    text = escape(caption)
    return (
        f"<figure{cls}><img src='data:image/png;base64,{data}' alt='{text}'>"
        f"<figcaption>{text}</figcaption></figure>"
    )


def matplotlib_figure(fig: Any, caption: str) -> str:
    """Render a matplotlib figure into the page as an embedded PNG and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return png_figure(buffer.getvalue(), caption, plot=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> str:
    """An HTML table; numbers are right-aligned, every cell is escaped."""

    def cell(value: Any) -> str:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return (
            f"<td class='num'>{escape(str(value))}</td>"
            if number
            else f"<td>{escape(str(value))}</td>"
        )

    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
