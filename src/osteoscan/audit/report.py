"""Writing the audit's report: audit.json (strict JSON) and a self-contained audit.html."""

from __future__ import annotations

from pathlib import Path

from osteoscan.audit.html import render_html
from osteoscan.audit.result import AuditResult
from osteoscan.files import atomic_write, atomic_write_json

JSON_NAME = "audit.json"
HTML_NAME = "audit.html"


def write_report(result: AuditResult, out_dir: Path | str) -> tuple[Path, Path]:
    """Write audit.json and audit.html into ``out_dir`` (created if needed), each atomically.

    Returns the two paths, JSON first.
    """
    out_dir = Path(out_dir)
    return (
        atomic_write_json(out_dir / JSON_NAME, result.to_dict()),
        atomic_write(out_dir / HTML_NAME, render_html(result)),
    )
