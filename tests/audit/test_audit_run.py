"""run_audit end to end on a dataset with planted duplicates, conflicts and broken files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osteoscan.audit import AuditResult, run_audit, summary_text, write_report
from osteoscan.audit.verify import NEAR_THRESHOLD
from osteoscan.errors import BadManifestError, NotWritableError
from osteoscan.htmlpage import STYLE

JSON_KEYS = {"inventory", "exact_duplicates", "near_duplicates", "conflicts", "shortcut"}


@pytest.fixture(scope="module")
def audited(planted, tmp_path_factory) -> tuple[AuditResult, Path]:
    out = tmp_path_factory.mktemp("audit-out")
    return run_audit(planted.root, out_dir=out, workers=2), out


def relative(root: Path, paths) -> set[str]:
    return {Path(p).relative_to(root).as_posix() for p in paths}


def groups_as_names(result: AuditResult, groups, root: Path) -> list[set[str]]:
    return [relative(root, (result.paths[i] for i in g.members)) for g in groups]


def test_every_planted_exact_duplicate_is_found_and_nothing_else(audited, planted) -> None:
    result, _ = audited
    found = groups_as_names(result, result.exact_duplicates, planted.root)
    assert sorted(map(sorted, found)) == sorted(map(sorted, planted.exact))


def test_every_planted_near_duplicate_is_found(audited, planted) -> None:
    result, _ = audited
    found = groups_as_names(result, result.near_duplicates, planted.root)
    for original, edited in planted.near:
        assert any({original, edited} <= group for group in found), (original, edited)
    for group in result.near_duplicates:
        assert all(s >= NEAR_THRESHOLD for *_, s in group.pairs)
        assert group.similarity == min(s for *_, s in group.pairs)


def test_no_group_joins_two_different_images(audited, planted) -> None:
    result, _ = audited
    for group in groups_as_names(
        result, result.exact_duplicates + result.near_duplicates, planted.root
    ):
        assert len(group) >= 2
        assert len({planted.families[name] for name in group}) == 1, group


def test_broken_files_are_findings_that_name_the_file(audited, planted) -> None:
    result, _ = audited
    reasons = {Path(p.path).name: p.reason for p in result.inventory.unreadable}
    for name in planted.broken:
        assert Path(name).name in reasons
        (problem,) = [p for p in result.inventory.unreadable if p.path.endswith(name)]
        assert str(problem).count(Path(name).name) == 1  # "X: reason", never "X: X: reason"
    assert "0 bytes" in reasons["empty.jpg"]
    text = summary_text(result)
    assert text.count("broken.png") == 1 and text.count("empty.jpg") == 1
    grouped = {i for g in result.exact_duplicates + result.near_duplicates for i in g.members}
    assert not any(Path(result.paths[i]).name in ("broken.png", "empty.jpg") for i in grouped)


def test_inventory_counts_add_up(audited, planted) -> None:
    inv = audited[0].inventory
    n_files = len(planted.families) + len(planted.broken)
    assert inv.n_files == n_files == len(audited[0].paths)
    assert sum(inv.readable_per_class.values()) == len(planted.families)
    assert inv.formats["all"] == {"BMP": 1, "JPEG": 1, "PNG": 24, "TIFF": 1}
    assert inv.modes["all"] == {"L": 26, "RGB": 1}
    assert inv.width["all"].count == len(planted.families)


def test_cross_class_copy_is_a_label_conflict(audited, planted) -> None:
    result, _ = audited
    conflicts = result.conflicts_of("duplicate_labels")
    assert [relative(planted.root, (result.paths[i] for i in c.members)) for c in conflicts] == [
        {"normal/n02.png", "osteoporosis/n02_again.bmp"}
    ]
    assert sum(result.is_cross_class(g) for g in result.exact_duplicates) == 1


def test_json_document_has_the_promised_structure(audited) -> None:
    result, out = audited
    document = json.loads((out / "audit.json").read_text())
    assert set(document) >= JSON_KEYS
    assert document == json.loads(json.dumps(result.to_dict()))
    for kind in ("exact_duplicates", "near_duplicates"):
        assert document[kind], kind
        for group in document[kind]:
            assert len(group["members"]) >= 2
            assert all({"path", "label"} <= set(m) for m in group["members"])
    for group in document["near_duplicates"]:
        assert all({"a", "b", "similarity"} == set(p) for p in group["pairs"])
    assert set(document["conflicts"]) == {"duplicate_labels", "t_score_label", "patient_classes"}
    assert {"auc", "ci_low", "ci_high", "warning"} <= set(document["shortcut"])


def test_html_report_shows_a_thumbnail_for_every_finding(audited) -> None:
    result, out = audited
    html = (out / "audit.html").read_text()
    findings = html.split("<div class='finding")[1:]
    n_groups = len(result.exact_duplicates) + len(result.near_duplicates)
    assert len(findings) == n_groups + len(result.conflicts)
    for finding in findings:
        assert finding.count("<img src='data:image/png;base64,") >= 2 or "T-score" in finding
    assert "does not diagnose" in html
    assert "broken.png" in html and "<script" not in html


def test_html_report_uses_the_shared_page_shell(audited) -> None:
    html = (audited[1] / "audit.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and f"<style>{STYLE}</style>" in html
    assert html.count("<style>") == 1


def test_result_is_plain_data_that_imports_no_rendering() -> None:
    """The result module imports no page, text or file writer, so a study report can reuse the
    result and the shared page pieces without pulling in the audit's own rendering."""
    code = (
        "import sys, osteoscan.audit.result as r; "
        "print(sorted(m for m in sys.modules if m.startswith('osteoscan.audit.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout
    for module in ("html", "summary", "report"):
        assert f"osteoscan.audit.{module}'" not in loaded, loaded


def test_write_report_writes_both_files_atomically(audited, tmp_path) -> None:
    result, out = audited
    json_path, html_path = write_report(result, tmp_path / "again")
    assert json_path.read_text() == (out / "audit.json").read_text()
    assert html_path.read_text() == (out / "audit.html").read_text()
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["audit.html", "audit.json"]


def test_summary_reports_the_counts(audited) -> None:
    text = summary_text(audited[0])
    assert "Exact duplicates (identical pixels): 3 group(s)" in text
    assert f"Near duplicates (detail similarity >= {NEAR_THRESHOLD:.2f}): 4 group(s)" in text
    assert "1 across classes" in text
    assert "skipped: " in text and "empty.jpg" in text


def test_manifest_conflicts_t_score_and_patient(manifest, tmp_path) -> None:
    result = run_audit(manifest, workers=1)
    names = [{Path(result.paths[i]).name for i in c.members} for c in result.conflicts]
    kinds = [c.kind for c in result.conflicts]
    assert list(zip(kinds, names, strict=True)) == [
        ("t_score_label", {"b.png"}),
        ("patient_classes", {"a.png", "c.png"}),
    ]
    assert "osteoporosis by the WHO definition" in result.conflicts[0].detail
    assert result.to_dict()["conflicts"]["t_score_label"][0]["members"][0]["t_score"] == -3.0
    assert not (tmp_path / "audit.json").exists()  # nothing is written without out_dir


def test_missing_source_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(BadManifestError, match="no such folder"):
        run_audit(tmp_path / "nowhere")


@pytest.fixture
def forbid_fingerprinting(monkeypatch):
    from osteoscan.audit import core

    def refuse(*args, **kwargs):
        raise AssertionError("the audit started work before checking --out")

    monkeypatch.setattr(core, "fingerprint_files", refuse)


def test_out_naming_a_file_is_refused_before_any_work(manifest, tmp_path, forbid_fingerprinting):
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(NotWritableError, match="--out .*taken: is a file"):
        run_audit(manifest, out_dir=tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "mine"


def test_unwritable_out_is_refused_before_any_work(
    manifest, tmp_path, monkeypatch, forbid_fingerprinting
) -> None:
    """A read-only folder (root ignores chmod, so the refusal is simulated where it happens)."""
    import tempfile

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(NotWritableError, match="Permission denied"):
        run_audit(manifest, out_dir=tmp_path / "report")


def test_images_the_manifest_does_not_list_are_shown(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for k, label in enumerate(("normal", "normal", "osteoporosis", "osteoporosis")):
        (tmp_path / "data" / label).mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 256, (64, 48), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / "data" / label / f"k{k}.png")
    (tmp_path / "data" / "manifest.csv").write_text(
        "path,label\nnormal/k0.png,normal\nosteoporosis/k2.png,osteoporosis\n"
    )
    result = run_audit(tmp_path / "data", out_dir=tmp_path / "out", workers=1)
    unlisted = sorted(Path(p).name for p in result.inventory.unlisted)
    assert unlisted == ["k1.png", "k3.png"] and len(result.paths) == 2
    document = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert sorted(Path(p).name for p in document["inventory"]["unlisted"]) == unlisted
    text = summary_text(result)
    assert "2 image file(s) beside the manifest are not listed" in text and "k3.png" in text
    assert "k1.png" in (tmp_path / "out" / "audit.html").read_text()
