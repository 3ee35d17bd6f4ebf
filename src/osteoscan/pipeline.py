"""The user-level verbs: train a bundle from a dataset, evaluate a bundle on a dataset.

Each reads records (data), prepares pixels once (data), groups duplicates and patients so no
split leaks (audit + splits), builds the network (models), fits it (training), scores it
(evaluation) and writes the bundle.
"""

from __future__ import annotations

import logging
import platform
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import lightning as L
import numpy as np

from osteoscan.audit import find_duplicate_groups
from osteoscan.bundle import (
    BUNDLE_FORMAT,
    DISCLAIMER,
    INTENSITY_CONTRACT,
    Bundle,
    load_bundle,
    save_bundle,
    staging_dir_for,
)
from osteoscan.data.labels import Task
from osteoscan.data.pixels import CONTRACT_VERSION, PreparedImages, default_cache_dir, prepare
from osteoscan.data.records import Dataset, ImageRecord, Problem, load_dataset
from osteoscan.data.splits import plan_leakage_groups, train_val_split
from osteoscan.data.transforms import Normalise
from osteoscan.errors import BadConfigError, BadImageError, BadManifestError
from osteoscan.evaluation import EvaluationResult, evaluate_predictions, youden_threshold
from osteoscan.models import build_model, get_spec
from osteoscan.training import TrainConfig, fit_classifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedSet:
    """Records that decoded, their class indices and letterboxed pixels, plus every skipped file."""

    records: list[ImageRecord]
    targets: np.ndarray
    pixels: np.ndarray
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class TrainOutcome:
    bundle_path: Path
    validation: EvaluationResult
    skipped: list[Problem]
    metadata: dict


@dataclass(frozen=True)
class EvaluationOutcome:
    result: EvaluationResult
    skipped: list[Problem]
    bundle_path: Path | None
    warnings: list[str] = field(default_factory=list)


def versions() -> dict[str, str]:
    return {name: version(name) for name in ("osteoscan", "torch", "torchvision", "lightning")} | {
        "python": platform.python_version()
    }


def prepare_dataset(
    dataset: Dataset,
    task: Task,
    image_size: int,
    cache_dir: Path | None,
    strict: bool,
) -> PreparedSet:
    """Decode every usable record once; bad files become problems (or an error when strict)."""
    problems = list(dataset.problems)
    if strict and problems:
        raise BadManifestError(f"{problems[0]} (--strict: fix or remove it)")
    records, targets = dataset.for_task(task)
    prepared: PreparedImages = prepare([r.path for r in records], image_size, cache_dir)
    bad = [Problem(str(records[i].path), reason) for i, reason in prepared.problems]
    if strict and bad:
        raise BadImageError(f"{bad[0].reason} (--strict: fix or remove it)")
    kept = [records[i] for i in prepared.indices]
    kept_targets = np.asarray([targets[i] for i in prepared.indices], dtype=np.int64)
    missing = set(range(len(task.class_names))) - set(kept_targets.tolist())
    if missing:
        names = ", ".join(task.class_names[i] for i in sorted(missing))
        raise BadManifestError(f"{dataset.source}: no readable images of class {names}")
    return PreparedSet(kept, kept_targets, prepared.pixels, problems + bad)


def train(
    data: Path | str, out: Path | str, config: TrainConfig | None = None, overwrite: bool = False
) -> TrainOutcome | None:
    """Train ``config.model`` on ``data`` and write a bundle to ``out``.

    Returns None on the non-zero ranks of a multi-process (DDP) run, which write nothing.
    """
    config = config or TrainConfig()
    if config.threshold != "youden" and not isinstance(config.threshold, float):
        raise BadConfigError(f"threshold {config.threshold!r} must be a number or 'youden'")
    L.seed_everything(config.seed, workers=True, verbose=False)
    dataset = load_dataset(Path(data))
    class_names = config.task.class_names
    # the model before decoding: a wrong name or missing weights fails in seconds, not minutes
    net, weights_source = build_model(
        config.model, config.mode, len(class_names), config.weights_file, config.weights_sha256
    )
    cache_dir = config.cache_dir or default_cache_dir()
    prepared = prepare_dataset(dataset, config.task, config.image_size, cache_dir, config.strict)
    groups = find_duplicate_groups([r.path for r in prepared.records], cache_dir=cache_dir)
    plan = plan_leakage_groups(
        [r.label for r in prepared.records],
        [r.patient_id for r in prepared.records],
        [g.members for g in groups],
        keep_conflicts=config.keep_conflicts,
    )
    pixels, targets = prepared.pixels[plan.kept], prepared.targets[plan.kept]
    records = [prepared.records[i] for i in plan.kept]
    train_index, val_index = train_val_split(
        targets, plan.group_ids, config.val_fraction, config.seed
    )

    spec = get_spec(config.model)
    out = Path(out)
    staging = staging_dir_for(out)
    shutil.rmtree(staging, ignore_errors=True)
    fit = fit_classifier(
        net,
        Normalise(spec.mean, spec.std),
        (pixels[train_index], targets[train_index]),
        (pixels[val_index], targets[val_index]),
        len(class_names),
        config,
        staging,
    )
    if not fit.is_global_zero:
        return None

    metadata = {
        "bundle_format": BUNDLE_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": config.model,
        "mode": config.mode,
        "task": config.task.to_dict(),
        "class_names": list(class_names),
        "positive_class": config.task.positive_class,
        "decision_threshold": None,
        "input": {
            "image_size": config.image_size,
            "in_chans": spec.in_chans,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "intensity_contract": INTENSITY_CONTRACT,
            "contract_version": CONTRACT_VERSION,
        },
        "seed": config.seed,
        "versions": versions(),
        "training_manifest_sha256": dataset.manifest_hash(),
        "training_source": str(Path(data).resolve()),
        "n_train": int(len(train_index)),
        "n_validation": int(len(val_index)),
        "leakage": {
            "duplicate_groups": plan.n_duplicate_groups,
            "conflicting_groups": plan.n_conflicting_groups,
            "images_dropped_for_conflicts": len(plan.dropped_conflicting),
            "patients_and_duplicates_kept_in_one_split": True,
        },
        "skipped_files": [str(p) for p in prepared.problems],
        "weights_source": None if weights_source is None else vars(weights_source),
        "fit": {
            "best_epoch": fit.best_epoch,
            "best_val_auc": fit.best_val_auc,
            "epochs_run": fit.epochs_run,
            "precision": fit.precision,
        },
        "config": config.to_dict(),
        "disclaimer": DISCLAIMER,
    }
    bundle = Bundle(net, metadata)
    val_probs = bundle.predict_proba(pixels[val_index])
    if len(class_names) == 2:
        threshold = (
            youden_threshold(targets[val_index], val_probs[:, 1])
            if config.threshold == "youden"
            else float(config.threshold)
        )
        metadata["decision_threshold"] = threshold
    validation = evaluate_predictions(
        targets[val_index], val_probs, class_names, metadata["decision_threshold"], seed=config.seed
    )
    metadata["validation_metrics"] = validation.to_dict()
    metadata["validation_images"] = [str(records[i].path) for i in val_index]
    save_bundle(bundle, out, staging)
    log.info("bundle written to %s", out)
    return TrainOutcome(out, validation, prepared.problems, metadata)


def evaluate(
    bundle: Path | str | Bundle,
    data: Path | str,
    strict: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> EvaluationOutcome:
    """Score a bundle on a labelled dataset, with the bundle's own preprocessing and threshold."""
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(Path(bundle))
    dataset = load_dataset(Path(data))
    prepared = prepare_dataset(
        dataset, loaded.task, loaded.image_size, cache_dir or default_cache_dir(), strict
    )
    probs = loaded.predict_proba(prepared.pixels)
    result = evaluate_predictions(
        prepared.targets, probs, loaded.class_names, loaded.threshold, n_boot=n_boot, seed=seed
    )
    return EvaluationOutcome(result, prepared.problems, loaded.path)
