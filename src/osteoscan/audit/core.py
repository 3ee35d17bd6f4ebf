"""run_audit: read a dataset, fingerprint each file once, and put every check together."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from osteoscan.audit.conflicts import find_conflicts
from osteoscan.audit.duplicates import group_duplicates
from osteoscan.audit.fingerprint import fingerprint_files
from osteoscan.audit.inventory import take_inventory
from osteoscan.audit.report import write_report
from osteoscan.audit.result import AuditResult
from osteoscan.audit.roi_check import audit_crops
from osteoscan.audit.shortcut import check_shortcuts
from osteoscan.audit.verify import NEAR_THRESHOLD
from osteoscan.data.pixels import DEFAULT_WORKERS
from osteoscan.data.records import load_dataset
from osteoscan.files import check_writable_dir
from osteoscan.roi.config import RoiConfig

log = logging.getLogger(__name__)


def run_audit(
    source: Path,
    out_dir: Path | None = None,
    workers: int | None = None,
    cache_dir: Path | None = None,
    roi: RoiConfig | None = None,
) -> AuditResult:
    """Audit a class-folder dataset or CSV manifest.

    With ``out_dir``, audit.json and a self-contained audit.html (thumbnails of every finding)
    are written there atomically. ``cache_dir`` keeps per-file fingerprints and pair scores between runs.
    Unreadable files are findings, never errors; a malformed manifest raises BadManifestError,
    an ``out_dir`` that cannot be written NotWritableError (both before any file is read).
    With ``roi`` the knees of every readable image are found too: the images where none was
    found are listed, and the shortcut check runs on the crops beside the whole images.
    """
    source = Path(source)
    if out_dir is not None:  # an unwritable --out fails now, not after minutes of work
        check_writable_dir(out_dir, "--out")
    workers = workers if workers is not None else DEFAULT_WORKERS
    dataset = load_dataset(source)
    records = dataset.records
    log.info("auditing %d images from %s with %d worker(s)", len(records), source, workers)
    start = time.perf_counter()
    fingerprints = fingerprint_files([r.path for r in records], cache_dir, workers)
    log.info("fingerprinted %d files in %.1f s", len(records), time.perf_counter() - start)
    start = time.perf_counter()
    groups = group_duplicates(fingerprints, workers, cache_dir)
    log.info("grouped duplicates in %.1f s", time.perf_counter() - start)
    conflicts = find_conflicts(records, groups)
    shown = {i for g in groups for i in g.members} | {i for c in conflicts for i in c.members}
    result = AuditResult(
        source=str(source),
        paths=tuple(str(r.path) for r in records),
        labels=tuple(r.label for r in records),
        t_scores=tuple(r.t_score for r in records),
        patient_ids=tuple(r.patient_id for r in records),
        inventory=take_inventory(records, fingerprints, dataset.problems, dataset.unlisted),
        exact_duplicates=tuple(g for g in groups if g.kind == "exact"),
        near_duplicates=tuple(g for g in groups if g.kind == "near"),
        conflicts=tuple(conflicts),
        shortcut=check_shortcuts(records, fingerprints, groups, workers),
        near_threshold=NEAR_THRESHOLD,
        previews={i: fingerprints[i].preview_png() for i in sorted(shown) if fingerprints[i].ok},
        roi=None
        if roi is None
        else audit_crops(records, fingerprints, groups, roi, cache_dir, workers),
    )
    if out_dir is not None:
        write_report(result, out_dir)
    return result
