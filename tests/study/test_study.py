"""A tiny study on synthetic phantoms, end to end: report files, identical grouped folds,
external validation, --only/--fold with the merge, and resuming after a killed run."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from osteoscan.cli import main
from osteoscan.study.config import load_study_config
from osteoscan.study.runner import RunOptions, run_study
from osteoscan.study.units import load_units
from osteoscan.training import TrainConfig
from tests.study.conftest import CNN3, FROM_STUDY, PLANTED_COPY, RESNET18, write_config

pytestmark = pytest.mark.slow
BOOTSTRAP = 200


def _options(config: Path, cache: Path, **kwargs) -> RunOptions:
    return RunOptions(
        config=load_study_config(config),
        train=TrainConfig(progress=False, cache_dir=cache),
        bootstrap=BOOTSTRAP,
        **kwargs,
    )


@pytest.fixture(scope="module")
def full_study(study_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("full-study")
    twin = CNN3 | {"name": "cnn3-twin", "label": "the same cnn3 again"}
    config = write_config(root / "study.yaml", [CNN3, RESNET18, twin])
    out = root / "out"
    options = _options(
        config, study_data["root"] / "cache", externals=(study_data["external"],), probe=False
    )
    outcome = run_study(study_data["data"], out, options)
    results = json.loads((out / "results.json").read_text())
    return {"out": out, "outcome": outcome, "results": results, "config": config}


def test_the_report_files_are_written_and_self_contained(full_study):
    out, results = full_study["out"], full_study["results"]
    html = (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()
    assert html.count("<img src='data:image/png;base64,") == 3  # ROC, confusion, learning curves
    assert "http://" not in html and "https://" not in html
    for text in (html, markdown):
        assert "not a diagnosis" in text
        assert "published accuracy" in text and "shortcut baseline" in text
    assert "| cnn3 (reference) | scratch | 0.66 |" in markdown
    twin_row = next(line for line in markdown.splitlines() if line.startswith("| the same cnn3"))
    assert "| copy of cnn3 |" in twin_row  # its time was not spent again
    header = next(line for line in markdown.splitlines() if line.startswith("| configuration"))
    cnn3_row = next(line for line in markdown.splitlines() if line.startswith("| cnn3 "))
    auc_sd = header.split(" | ").index("ROC AUC (mean ± sd over folds)")
    cnn3 = next(r for r in results["configurations"] if r["name"] == "cnn3")
    auc = cnn3["mean_sd"]["roc_auc"]["mean"]
    assert cnn3_row.split(" | ")[auc_sd].startswith(f"{auc:.3f} ± ")  # not only the pooled AUC
    assert re.search(r"^- precision: \S+ \(units ran [\w-]+\)$", markdown, re.MULTILINE)
    rows = {r["name"]: r for r in results["configurations"]}
    assert rows["cnn3"]["units_done"] == rows["r18"]["units_done"] == 2
    comparison = rows["r18"]["comparison"]
    assert 0.0 <= comparison["mcnemar_p"] <= 1.0 and 0.0 <= comparison["delong_p"] <= 1.0
    assert comparison["n_paired"] == len(results["folds"])
    for metric in ("accuracy", "sensitivity", "specificity", "roc_auc"):  # defined for any model
        low, high = rows["r18"]["pooled"][metric]["ci95"]
        assert 0.0 <= low <= high <= 1.0
        assert 0.0 <= rows["r18"]["pooled"][metric]["value"] <= 1.0
        assert rows["r18"]["mean_sd"][metric]["n_folds"] == 2
    assert {"precision", "f1"} <= set(rows["r18"]["pooled"])
    assert rows["r18"]["learning_curves"]["r18-r1-f1"][0]["val_auc"] is not None
    assert "comparison" in results["shortcut_baseline"]
    assert results["missing_units"] == []


def test_every_configuration_sees_the_same_folds(full_study):
    units = load_units(full_study["out"])
    for fold in (1, 2):
        assert units[f"cnn3-r1-f{fold}"]["test_paths"] == units[f"r18-r1-f{fold}"]["test_paths"]
    by_path = {im["path"]: im["folds"][0] for im in full_study["results"]["folds"]}
    for unit in units.values():
        assert {by_path[p] for p in unit["test_paths"]} == {unit["fold"]}
    assert sorted(by_path.values()) == sorted(
        unit["fold"]
        for unit in units.values()
        if unit["configuration"] == "cnn3"
        for _ in unit["test_paths"]
    )


def test_a_configuration_that_runs_identically_is_computed_once(full_study):
    assert full_study["outcome"].ran == (
        "cnn3-r1-f1",
        "cnn3-r1-f2",
        "r18-r1-f1",
        "r18-r1-f2",
        "cnn3-twin-r1-f1",
        "cnn3-twin-r1-f2",
    )
    units = load_units(full_study["out"])
    for fold in (1, 2):
        twin, original = units[f"cnn3-twin-r1-f{fold}"], units[f"cnn3-r1-f{fold}"]
        assert twin["same_computation_as"] == original["unit"]
        assert twin["test_probabilities"] == original["test_probabilities"]
    assert (
        "the same cnn3 again runs exactly as cnn3 here"
        in (full_study["out"] / "report.md").read_text()
    )


def test_duplicates_and_patients_never_straddle_folds(full_study, study_data):
    results = full_study["results"]
    fold_of = {Path(im["path"]).name: im["folds"][0] for im in results["folds"]}
    assert fold_of[Path(PLANTED_COPY).name] == fold_of[study_data["original"].name]
    assert results["summary"]["exact_duplicate_groups"] >= 1
    study = json.loads((full_study["out"] / "study.json").read_text())
    folds_of_patient = defaultdict(set)
    for image in study["images"]:
        folds_of_patient[image["patient_id"]].add(image["folds"][0])
    assert any(
        len([i for i in study["images"] if i["patient_id"] == p]) > 1 for p in folds_of_patient
    )
    assert all(len(folds) == 1 for folds in folds_of_patient.values())


def test_external_set_is_scored_by_the_fold_models_without_the_overlap(full_study, study_data):
    ((name, external),) = full_study["results"]["externals"].items()
    assert name == study_data["external"].name
    removed = external["removed_as_duplicates_of_study_images"]
    assert [Path(p).name for p in removed] == [Path(FROM_STUDY).name]
    listed = (study_data["external"] / "manifest.csv").read_text().count("normal/") + (
        study_data["external"] / "manifest.csv"
    ).read_text().count("osteoporosis/")
    assert external["n"] == listed - 1
    for row in external["configurations"]:
        assert row["fold_models"] == 2
        assert row["metrics"]["roc_auc"]["ci95"][0] is not None
    markdown = (full_study["out"] / "report.md").read_text()
    assert f"## External validation: {name}" in markdown and "from_study.png" in markdown


def _main(capsys, *args) -> tuple[int, str, str]:
    """The real ``osteoscan`` entry point, in this process (no interpreter start-up)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_only_and_fold_select_units_and_report_merges_what_exists(
    full_study, study_data, tmp_path, capsys
):
    cache = study_data["root"] / "cache"
    out = tmp_path / "spread"
    for fold in (1, 2):
        options = _options(
            full_study["config"], cache, only=("cnn3",), fold=fold, write_report=False
        )
        outcome = run_study(study_data["data"], out, options)
        assert outcome.ran == (f"cnn3-r1-f{fold}",) and outcome.report is None
        code, _, err = _main(capsys, "report", out, "--bootstrap", BOOTSTRAP)
        assert code == 0, err
        results = json.loads((out / "results.json").read_text())
        expected_missing = ["r18-r1-f1", "r18-r1-f2", "cnn3-twin-r1-f1", "cnn3-twin-r1-f2"]
        expected_missing += ["cnn3-r1-f2"] if fold == 1 else []
        assert sorted(results["missing_units"]) == sorted(expected_missing)
        assert "not finished yet" in (out / "report.html").read_text()
    rows = {r["name"]: r for r in results["configurations"]}
    assert rows["cnn3"]["units_done"] == 2 and rows["r18"]["units_done"] == 0
    assert results["folds"] == full_study["results"]["folds"]  # same seed, same folds anywhere


def test_a_killed_study_resumes_without_recomputing_finished_units(study_data, tmp_path):
    slow = {"name": "cnn3-long", "model": "cnn3", "mode": "scratch", "epochs": 30, "patience": 30}
    config = write_config(tmp_path / "study.yaml", [CNN3, slow])
    out, cache = tmp_path / "out", study_data["root"] / "cache"
    command = [sys.executable, "-m", "osteoscan.cli", "study", "--data", study_data["data"]]
    command += ["--out", out, "--config", config, "--cache-dir", cache, "--no-report"]
    process = subprocess.Popen(
        list(map(str, command)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    units, in_progress = out / "units", out / "staging" / "cnn3-long-r1-f1"
    deadline = time.monotonic() + 300
    while not in_progress.exists() and time.monotonic() < deadline:
        assert process.poll() is None, "the study ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in units.glob("*.json")}
    assert set(finished) == {"cnn3-r1-f1.json", "cnn3-r1-f2.json"}  # killed inside the third
    assert not list(units.glob(".*.tmp"))

    outcome = run_study(
        study_data["data"], out, _options(config, cache, probe=False, write_report=False)
    )
    assert outcome.ran == ("cnn3-long-r1-f1", "cnn3-long-r1-f2")
    for name, mtime in finished.items():
        assert (units / name).stat().st_mtime_ns == mtime
    assert len(list(units.glob("*.json"))) == 4


def test_a_signal_inside_training_gives_the_study_message(study_data, tmp_path, monkeypatch):
    import osteoscan.study.runner as runner
    from osteoscan.errors import InterruptedRun
    from osteoscan.training.trainer import interrupted

    def stopped(*args, **kwargs):
        raise interrupted(signal.SIGTERM)

    monkeypatch.setattr(runner, "fit_split", stopped)
    config = write_config(tmp_path / "study.yaml", [CNN3])
    options = _options(config, study_data["root"] / "cache", probe=False, write_report=False)
    with pytest.raises(InterruptedRun, match=r"study interrupted during unit cnn3-r1-f1") as info:
        run_study(study_data["data"], tmp_path / "out", options)
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert "run the same command again to continue" in str(info.value)
