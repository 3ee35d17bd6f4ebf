"""Merge whatever units exist in a study folder into results.json, report.md and report.html.

Reads only the folder (``study.json`` + ``units/*.json``), so ``osteoscan report DIR`` works on
any machine after units were spread over several; missing units are listed, never invented.
Pooled out-of-fold metrics use each unit's own threshold for its test images; ROC AUC pools the
probabilities. With repeats, pooled metrics and comparisons use repeat 1; mean +- sd uses every unit.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from osteoscan.errors import BadConfigError
from osteoscan.evaluation import evaluate_predictions
from osteoscan.evaluation.compare import delong, mcnemar
from osteoscan.files import atomic_write, atomic_write_json
from osteoscan.htmlpage import SCREENING_NOTICE, matplotlib_figure, page, table
from osteoscan.stats import DEFAULT_BOOTSTRAP, roc_auc
from osteoscan.study.units import STUDY_FILE, Unit, format_duration, load_units

log = logging.getLogger(__name__)

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
RESULTS_JSON = "results.json"
METRICS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc")
SHORTCUT_ROW = "shortcut baseline"
SHORTCUT_THRESHOLD = 0.5


def load_study(out: Path) -> dict:
    path = Path(out) / STUDY_FILE
    if not path.is_file():
        raise BadConfigError(
            f"{out}: not a study folder (no {STUDY_FILE}); give the --out folder of 'osteoscan study'"
        )
    return json.loads(path.read_text())


def write_report(out: Path | str, n_boot: int = DEFAULT_BOOTSTRAP) -> Path:
    """Write results.json, report.md and report.html into ``out``; returns the HTML path."""
    out = Path(out)
    study = load_study(out)
    results = compute_results(study, load_units(out), n_boot)
    atomic_write_json(out / RESULTS_JSON, results)
    atomic_write(out / REPORT_MD, render_markdown(results))
    html = out / REPORT_HTML
    atomic_write(html, render_html(results))
    log.info("study report written to %s", html)
    return html


def _pooled(
    targets: np.ndarray, probs: np.ndarray, decisions: np.ndarray, n_boot: int, seed: int
) -> dict:
    """Metrics with 95% CIs: threshold metrics from the decisions, AUC from the probabilities."""
    names = ("normal", "osteoporosis")
    at_decisions = evaluate_predictions(
        targets, np.stack([1 - decisions, decisions], 1).astype(float), names, 0.5, n_boot, seed
    )
    on_probabilities = evaluate_predictions(
        targets, np.stack([1 - probs, probs], 1), names, 0.5, n_boot, seed
    )
    metrics = at_decisions.to_dict()
    metrics["roc_auc"] = on_probabilities.metrics["roc_auc"].to_dict()
    return metrics


def _point(targets: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, float | None]:
    names = ("normal", "osteoporosis")
    result = evaluate_predictions(targets, np.stack([1 - probs, probs], 1), names, threshold, 0)
    return {m: result.metrics[m].to_dict()["value"] for m in METRICS}


def _mean_sd(per_fold: list[dict]) -> dict:
    out = {}
    for metric in METRICS:
        values = [f[metric] for f in per_fold if f[metric] is not None]
        out[metric] = {
            "mean": round(float(np.mean(values)), 6) if values else None,
            "sd": round(float(np.std(values, ddof=1)), 6) if len(values) > 1 else None,
            "n_folds": len(values),
        }
    return out


def _threshold_of(unit: dict) -> float:
    return 0.5 if unit["threshold"] is None else unit["threshold"]


def _oof(
    units: list[dict], index: dict[str, int], n: int, repeat: int = 1
) -> tuple[np.ndarray, ...]:
    """Out-of-fold probability and decision per image of ``repeat`` (NaN where no unit yet)."""
    probs, decisions = np.full(n, np.nan), np.full(n, np.nan)
    for unit in units:
        if unit["repeat"] != repeat:
            continue
        rows = [index[p] for p in unit["test_paths"]]
        p = np.asarray(unit["test_probabilities"])
        probs[rows] = p
        decisions[rows] = p >= _threshold_of(unit)
    return probs, decisions


def _compare(targets, probs, decisions, ref_probs, ref_decisions) -> dict:
    both = ~np.isnan(probs) & ~np.isnan(ref_probs)
    y = targets[both]
    correct, ref_correct = decisions[both] == y, ref_decisions[both] == y
    test = mcnemar(ref_correct, correct)
    out = {
        "n_paired": int(both.sum()),
        "mcnemar_p": round(test.p_value, 6),
        "mcnemar_method": test.method,
        "only_reference_correct": test.only_a_correct,
        "only_this_correct": test.only_b_correct,
    }
    try:
        d = delong(y, ref_probs[both], probs[both])
        out |= {
            "delong_p": round(d.p_value, 6),
            "auc_difference_vs_reference": round(-d.difference, 6),
        }
    except ValueError:
        out |= {"delong_p": None, "auc_difference_vs_reference": None}
    return out


def _roc_points(targets: np.ndarray, probs: np.ndarray) -> dict:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(targets, probs)
    return {"fpr": [round(float(v), 4) for v in fpr], "tpr": [round(float(v), 4) for v in tpr]}


def compute_results(study: dict, units: dict[str, dict], n_boot: int = DEFAULT_BOOTSTRAP) -> dict:
    """Every number the report shows, as plain data (also written as results.json)."""
    images = study["images"]
    index = {im["path"]: i for i, im in enumerate(images)}
    targets = np.asarray([im["target"] for im in images])
    n, seed = len(images), study["config"]["seed"]
    expected = study["units"]
    missing = [u for u in expected if u not in units]
    by_config: dict[str, list[dict]] = {}
    for unit_id in expected:
        if unit_id in units:
            by_config.setdefault(units[unit_id]["configuration"], []).append(units[unit_id])
    reference = study["reference"]
    ref_units = by_config.get(reference, [])
    ref_probs, ref_decisions = _oof(ref_units, index, n)
    rows = []
    for c in study["configurations"]:
        done = by_config.get(c["name"], [])
        row = {
            "name": c["name"],
            "title": c["title"],
            "model": c["model"],
            "mode": c["mode"],
            "requested_mode": c["requested_mode"],
            "published_accuracy": c["published_accuracy"],
            "changes": c["changes"],
            "units_done": len(done),
            "units_expected": sum(Unit.parse(u).configuration == c["name"] for u in expected),
            "is_reference": c["name"] == reference,
            "same_computation_as": sorted(
                {u["same_computation_as_configuration"] for u in done if "same_computation_as" in u}
            ),
        }
        if done:
            probs, decisions = _oof(done, index, n)
            have = ~np.isnan(probs)
            per_fold = [
                {"unit": u["unit"], "threshold": u["threshold"]}
                | _point(
                    np.asarray(u["test_targets"]),
                    np.asarray(u["test_probabilities"]),
                    _threshold_of(u),
                )
                for u in sorted(done, key=lambda u: (u["repeat"], u["fold"]))
            ]
            row |= {
                "n_pooled": int(have.sum()),
                "pooled": _pooled(targets[have], probs[have], decisions[have], n_boot, seed),
                "per_fold": per_fold,
                "mean_sd": _mean_sd(per_fold),
                "roc": _roc_points(targets[have], probs[have]),
                "seconds_total": round(sum(u["seconds"] for u in done), 1),
                "seconds_per_unit": round(float(np.mean([u["seconds"] for u in done])), 1),
                "precision": sorted({u["fit"]["precision"] for u in done}),
                "weights": sorted(
                    {(u["weights"]["file"], u["weights"]["sha256"]) for u in done if u["weights"]}
                ),
                "learning_curves": {u["unit"]: u["learning_curve"] for u in done},
                "comparison": None
                if c["name"] == reference or not ref_units
                else _compare(targets, probs, decisions, ref_probs, ref_decisions),
                "images_without_knee": sum(u.get("n_test_images_without_knee", 0) for u in done),
            }
            row["weights"] = [{"file": f, "sha256": h} for f, h in row["weights"]]
        rows.append(row)
    return {
        "data": study["data"],
        "roi_comparisons": _roi_comparisons(study, by_config, index, targets),
        "manifest_sha256": study["manifest_sha256"],
        "summary": study["summary"],
        "reference": reference,
        "threshold_rule": study["threshold_rule"],
        "quick": study["quick"],
        "no_pretrained": study["no_pretrained"],
        "config": study["config"],
        "environment": study["environment"],
        "configurations": rows,
        "shortcut_baseline": _shortcut_row(study, targets, ref_probs, ref_decisions, n_boot, seed),
        "externals": _externals(study, by_config, n_boot, seed),
        "missing_units": missing,
        "folds": [
            {"path": im["path"], "label": im["label"], "group": im["group"], "folds": im["folds"]}
            for im in images
        ],
        "screening_notice": SCREENING_NOTICE,
    }


# a knee-ROI configuration's whole-image twin: the same in every one of these, without the ROI
TWIN_FIELDS = (
    "model",
    "requested_mode",
    "mode",
    "image_size",
    "epochs",
    "batch_size",
    "learning_rate",
    "patience",
    "val_fraction",
    "augment",
)


def _twin(c: dict, configurations: list[dict]) -> dict | None:
    """The whole-image configuration that differs from knee-ROI configuration ``c`` only by it."""
    return next(
        (
            t
            for t in configurations
            if t.get("roi") is None and all(t[k] == c[k] for k in TWIN_FIELDS)
        ),
        None,
    )


def _roi_comparisons(
    study: dict, by_config: dict[str, list[dict]], index: dict[str, int], targets: np.ndarray
) -> list[dict]:
    """Each knee-ROI configuration against its whole-image twin, paired on the images both
    scored (the same folds): AUC of each on those images, DeLong and McNemar."""
    out = []
    n = len(targets)
    configurations = study["configurations"]
    for c in configurations:
        if c.get("roi") is None or not by_config.get(c["name"]):
            continue
        twin = _twin(c, configurations)
        if twin is None or not by_config.get(twin["name"]):
            continue
        probs, decisions = _oof(by_config[c["name"]], index, n)
        twin_probs, twin_decisions = _oof(by_config[twin["name"]], index, n)
        both = ~np.isnan(probs) & ~np.isnan(twin_probs)
        y = targets[both]
        entry = {
            "roi": c["name"],
            "roi_title": c["title"],
            "whole": twin["name"],
            "whole_title": twin["title"],
            "roc_auc_roi": _auc(y, probs[both]),
            "roc_auc_whole": _auc(y, twin_probs[both]),
            "accuracy_roi": round(float(np.mean(decisions[both] == y)), 6) if y.size else None,
            "accuracy_whole": round(float(np.mean(twin_decisions[both] == y)), 6)
            if y.size
            else None,
        }
        entry |= _compare(targets, probs, decisions, twin_probs, twin_decisions)
        out.append(entry)
    return out


def _auc(targets: np.ndarray, probs: np.ndarray) -> float | None:
    if len(set(targets.tolist())) < 2:
        return None
    return round(float(roc_auc(targets, probs)), 6)


def _shortcut_row(study, targets, ref_probs, ref_decisions, n_boot, seed) -> dict:
    baseline = study["shortcut_baseline"]
    probs = np.asarray(baseline["probabilities"]["1"])
    decisions = (probs >= SHORTCUT_THRESHOLD).astype(float)
    row = {
        "description": baseline["description"],
        "threshold": SHORTCUT_THRESHOLD,
        "pooled": _pooled(targets, probs, decisions, n_boot, seed),
        "roc": _roc_points(targets, probs),
    }
    if not np.all(np.isnan(ref_probs)):
        row["comparison"] = _compare(targets, probs, decisions, ref_probs, ref_decisions)
    return row


def _externals(study: dict, by_config: dict[str, list[dict]], n_boot: int, seed: int) -> dict:
    out = {}
    for name, external in study["externals"].items():
        targets = np.asarray(external["targets"])
        rows = []
        for c in study["configurations"]:
            done = [u for u in by_config.get(c["name"], []) if name in u["external_probabilities"]]
            row = {"name": c["name"], "title": c["title"], "fold_models": len(done)}
            if done and len(targets):
                # null: a knee-ROI model found no knee on that image; it is not scored
                each = np.asarray(
                    [
                        [np.nan if p is None else p for p in u["external_probabilities"][name]]
                        for u in done
                    ],
                    dtype=float,
                )
                scored = ~np.isnan(each).any(axis=0)
                probs = each[:, scored].mean(axis=0)
                threshold = float(np.mean([_threshold_of(u) for u in done]))
                decisions = (probs >= threshold).astype(float)
                row |= {
                    "threshold": round(threshold, 6),
                    "n_scored": int(scored.sum()),
                    "metrics": _pooled(targets[scored], probs, decisions, n_boot, seed),
                }
            rows.append(row)
        out[name] = {
            "source": external["source"],
            "n": len(targets),
            "removed_as_duplicates_of_study_images": external[
                "removed_as_duplicates_of_study_images"
            ],
            "skipped_files": external["skipped_files"],
            "rule": "mean probability of the fold models; threshold = mean of their thresholds",
            "configurations": rows,
        }
    return out


# ---- rendering -------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _with_ci(metric: dict | None) -> str:
    if not metric or metric["value"] is None:
        return "n/a"
    low, high = metric["ci95"]
    return f"{metric['value']:.3f} [{_fmt(low, 2)}, {_fmt(high, 2)}]"


def _mean_sd_text(entry: dict) -> str:
    if entry["mean"] is None:
        return "n/a"
    return f"{entry['mean']:.3f} ± {_fmt(entry['sd'])}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _main_table(results: dict) -> tuple[list[str], list[list]]:
    headers = [
        "configuration",
        "mode",
        "published accuracy",
        "accuracy (pooled, 95% CI)",
        "accuracy (mean ± sd over folds)",
        "sensitivity",
        "specificity",
        "precision",
        "F1",
        "ROC AUC (pooled, 95% CI)",
        "ROC AUC (mean ± sd over folds)",
        "McNemar p vs reference",
        "DeLong p vs reference",
        "time",
        "units",
    ]
    rows = []
    for r in results["configurations"]:
        published = _fmt(r["published_accuracy"], 2) if r["published_accuracy"] is not None else "-"
        name = r["title"] + (" (reference)" if r["is_reference"] else "")
        mode = (
            r["mode"]
            if r["mode"] == r["requested_mode"]
            else f"{r['mode']} (asked {r['requested_mode']})"
        )
        units = f"{r['units_done']}/{r['units_expected']}"
        if "pooled" not in r:
            rows.append([name, mode, published, *["not run"] * 11, units])
            continue
        pooled, cmp = r["pooled"], r["comparison"] or {}
        rows.append(
            [
                name,
                mode,
                published,
                _with_ci(pooled["accuracy"]),
                _mean_sd_text(r["mean_sd"]["accuracy"]),
                *(_with_ci(pooled[m]) for m in ("sensitivity", "specificity", "precision", "f1")),
                _with_ci(pooled["roc_auc"]),
                _mean_sd_text(r["mean_sd"]["roc_auc"]),
                _p(cmp.get("mcnemar_p")) if cmp else "-",
                _p(cmp.get("delong_p")) if cmp else "-",
                f"copy of {', '.join(r['same_computation_as'])}"
                if r["same_computation_as"]
                else format_duration(r["seconds_total"]),
                units,
            ]
        )
    s = results["shortcut_baseline"]
    cmp = s.get("comparison", {})
    rows.append(
        [
            SHORTCUT_ROW + " (no image content)",
            "-",
            "-",
            _with_ci(s["pooled"]["accuracy"]),
            "-",
            *(_with_ci(s["pooled"][m]) for m in ("sensitivity", "specificity", "precision", "f1")),
            _with_ci(s["pooled"]["roc_auc"]),
            "-",
            _p(cmp.get("mcnemar_p")) if cmp else "-",
            _p(cmp.get("delong_p")) if cmp else "-",
            "-",
            "-",
        ]
    )
    return headers, rows


def _notices(results: dict) -> list[str]:
    notices = []
    changed = [r for r in results["configurations"] if r["changes"]]
    for r in changed:
        notices.append(
            f"{r['title']}: {'; '.join(r['changes'])}. Not comparable with the published number."
        )
    for r in results["configurations"]:
        if r["same_computation_as"]:
            notices.append(
                f"{r['title']} runs exactly as {', '.join(r['same_computation_as'])} here, so "
                "its units are copies of that computation (same numbers, time not spent twice)."
            )
    for r in results["configurations"]:
        if r.get("images_without_knee"):
            notices.append(
                f"{r['title']}: no knee was found on {r['images_without_knee']} test image(s); "
                f"they are not scored ({r['n_pooled']} images scored)."
            )
    if results["missing_units"]:
        notices.append(
            f"{len(results['missing_units'])} unit(s) not finished yet, left out of every number: "
            + ", ".join(results["missing_units"])
        )
    return notices


ROI_TABLE_CAPTION = (
    "Each knee-ROI configuration against its whole-image twin on the same folds, paired on the "
    "images both scored: ROC AUC and accuracy of each on those images, DeLong and McNemar p."
)


def _roi_table(results: dict) -> tuple[list[str], list[list]] | None:
    comparisons = results.get("roi_comparisons") or []
    if not comparisons:
        return None
    headers = [
        "knee ROI",
        "whole image",
        "images paired",
        "ROC AUC ROI",
        "ROC AUC whole",
        "accuracy ROI",
        "accuracy whole",
        "DeLong p",
        "McNemar p",
    ]
    rows = [
        [
            c["roi_title"],
            c["whole_title"],
            c["n_paired"],
            _fmt(c["roc_auc_roi"]),
            _fmt(c["roc_auc_whole"]),
            _fmt(c["accuracy_roi"]),
            _fmt(c["accuracy_whole"]),
            _p(c["delong_p"]),
            _p(c["mcnemar_p"]),
        ]
        for c in comparisons
    ]
    return headers, rows


def _external_tables(results: dict) -> list[tuple[str, list[str], list[str], list[list]]]:
    """(external name, preamble lines, headers, rows) per external set."""
    out = []
    for name, ext in results["externals"].items():
        removed = ext["removed_as_duplicates_of_study_images"]
        unscored = [
            f"{r['title']} {ext['n'] - r['n_scored']}"
            for r in ext["configurations"]
            if r.get("n_scored", ext["n"]) < ext["n"]
        ]
        preamble = [
            f"{len(removed)} image(s) of {ext['source']} duplicate study images and were removed"
            + (": " + ", ".join(removed) if removed else "."),
            f"{ext['n']} images scored. Rule: {ext['rule']}.",
            *(
                ["Not scored because no knee was found: " + ", ".join(unscored) + "."]
                if unscored
                else []
            ),
        ]
        headers = ["configuration", "fold models", "threshold", *METRICS]
        rows = []
        for r in ext["configurations"]:
            if "metrics" not in r:
                rows.append([r["title"], r["fold_models"], "-", *["not run"] * len(METRICS)])
            else:
                rows.append(
                    [
                        r["title"],
                        r["fold_models"],
                        _fmt(r["threshold"]),
                        *(_with_ci(r["metrics"][m]) for m in METRICS),
                    ]
                )
        out.append((name, preamble, headers, rows))
    return out


def _summary_lines(results: dict) -> list[str]:
    s = results["summary"]
    counts = ", ".join(f"{k} {v}" for k, v in s["class_counts"].items())
    return [
        f"data: {results['data']} (manifest sha256 {results['manifest_sha256'][:12]}...)",
        f"{s['images_used']} images used of {s['images_listed']} listed ({counts}); "
        f"{len(s['skipped_files'])} unreadable file(s) skipped",
        f"audit: {s['exact_duplicate_groups']} exact and {s['near_duplicate_groups']} near duplicate "
        f"group(s) kept inside one fold; {s['conflicting_label_groups']} group(s) with conflicting "
        f"labels, {s['images_dropped_for_conflicting_labels']} image(s) dropped for them",
        f"{s['leakage_groups']} independent groups (patients and duplicates) split into "
        f"{results['config']['folds']} stratified folds x {results['config']['repeats']} repeat(s), "
        f"seed {results['config']['seed']}; {s['patients']} patient id(s) known",
        f"decision threshold: {results['threshold_rule']}",
        "early stopping: on a grouped validation split drawn inside each fold's training part",
    ]


def _environment_lines(results: dict) -> list[str]:
    env = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    used = sorted({p for r in results["configurations"] for p in r.get("precision", [])})
    return [
        f"device: {env['device']}",
        f"precision: {env['precision']}" + (f" (units ran {', '.join(used)})" if used else ""),
        f"versions: {versions}",
        f"seed: {env['seed']}",
        env["platform"],
    ]


def _weights_lines(results: dict) -> list[str]:
    lines = []
    for r in results["configurations"]:
        for w in r.get("weights", []):
            lines.append(f"{r['title']}: {w['file']} (sha256 {w['sha256']})")
        if r.get("units_done") and not r.get("weights"):
            lines.append(f"{r['title']}: no pretrained weights (random initialisation)")
    return lines


def render_markdown(results: dict) -> str:
    def md_table(headers, rows) -> list[str]:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        return lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]

    lines = ["# osteoscan study report", "", f"> {SCREENING_NOTICE}", ""]
    lines += [f"> **Notice:** {n}" for n in _notices(results)]
    lines += ["", "## Data and audit", "", *[f"- {x}" for x in _summary_lines(results)], ""]
    lines += ["## Results (out-of-fold)", "", *md_table(*_main_table(results)), ""]
    roi = _roi_table(results)
    if roi:
        lines += ["## Knee ROI vs whole image", "", ROI_TABLE_CAPTION, "", *md_table(*roi), ""]
    for name, preamble, headers, rows in _external_tables(results):
        lines += [
            f"## External validation: {name}",
            "",
            *preamble,
            "",
            *md_table(headers, rows),
            "",
        ]
    lines += ["## Weights", "", *[f"- {x}" for x in _weights_lines(results)], ""]
    lines += ["## Environment", "", *[f"- {x}" for x in _environment_lines(results)], ""]
    return "\n".join(lines)


def render_html(results: dict) -> str:
    from html import escape

    body = [f"<p class='warn'>{escape(n)}</p>" for n in _notices(results)]
    body += [
        "<h2>Data and audit</h2><ul>",
        *[f"<li>{escape(x)}</li>" for x in _summary_lines(results)],
        "</ul>",
    ]
    headers, rows = _main_table(results)
    body += [
        "<h2>Results (out-of-fold)</h2>",
        "<div style='overflow-x: auto; font-size: 90%'>",
        table(
            headers,
            rows,
            "Pooled out-of-fold metrics with 95% bootstrap CIs; p-values: paired tests against the "
            f"reference ({results['reference']}), McNemar exact, DeLong for AUC.",
        ),
        "</div>",
    ]
    roi = _roi_table(results)
    if roi:
        body += ["<h2>Knee ROI vs whole image</h2>", table(*roi, ROI_TABLE_CAPTION)]
    body += _figures(results)
    for name, preamble, ext_headers, ext_rows in _external_tables(results):
        body += [f"<h2>External validation: {escape(name)}</h2>"]
        body += [f"<p>{escape(x)}</p>" for x in preamble]
        body += [table(ext_headers, ext_rows)]
    body += [
        "<h2>Weights</h2><ul>",
        *[f"<li>{escape(x)}</li>" for x in _weights_lines(results)],
        "</ul>",
    ]
    body += [
        "<h2>Environment</h2><ul>",
        *[f"<li>{escape(x)}</li>" for x in _environment_lines(results)],
        "</ul>",
    ]
    return page("osteoscan study report", body)


def _figures(results: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in results["configurations"] if "pooled" in r]
    if not done:
        return []
    figures = []
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for r in done:
        ax.plot(
            r["roc"]["fpr"],
            r["roc"]["tpr"],
            label=f"{r['title']} (AUC {_fmt(r['pooled']['roc_auc']['value'])})",
        )
    s = results["shortcut_baseline"]
    ax.plot(
        s["roc"]["fpr"],
        s["roc"]["tpr"],
        "k--",
        label=f"{SHORTCUT_ROW} (AUC {_fmt(s['pooled']['roc_auc']['value'])})",
    )
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="Pooled out-of-fold ROC curves")
    ax.legend(fontsize=7, loc="lower right")
    figures.append(matplotlib_figure(fig, "ROC curves of all configurations (pooled out-of-fold)"))

    fig, axes = plt.subplots(
        1, len(done), figsize=(2.6 * len(done), 2.8), squeeze=False, layout="constrained"
    )
    for ax, r in zip(axes[0], done, strict=True):
        matrix = np.asarray(r["pooled"]["confusion_matrix"])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xticklabels=["N", "OP"],
            yticklabels=["N", "OP"],
            title=r["title"],
        )
        ax.title.set_fontsize(8)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    figures.append(
        matplotlib_figure(fig, "Confusion matrices (pooled out-of-fold; N normal, OP osteoporosis)")
    )

    fig, axes = plt.subplots(
        1, len(done), figsize=(2.8 * len(done), 2.6), squeeze=False, sharey=True
    )
    for ax, r in zip(axes[0], done, strict=True):
        for unit, curve in r["learning_curves"].items():
            points = [(p["epoch"], p["val_auc"]) for p in curve if "val_auc" in p]
            if points:
                ax.plot(*zip(*points, strict=True), marker=".", label=unit.rsplit("-", 1)[-1])
        ax.set(xlabel="epoch", title=r["title"])
        ax.title.set_fontsize(8)
        if ax.lines:
            ax.legend(fontsize=6)
    axes[0][0].set_ylabel("validation AUC")
    figures.append(
        matplotlib_figure(fig, "Learning curves: validation AUC per epoch, one line per fold")
    )
    return figures
