"""The user-level verbs: train a bundle from a dataset, evaluate a bundle on a dataset.

Training is four public steps that a study reuses for every fold: :func:`prepare_grouped` (read
records, decode pixels once, group duplicates and patients so no split leaks), :func:`fit_split`
(build the network and fit it on one split), :func:`choose_threshold` and :func:`write_bundle`.
:func:`train` composes them; :func:`evaluate` scores a bundle and warns when the evaluation
images overlap the images it was trained or validated on.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import lightning as L
import numpy as np

from osteoscan.audit import DuplicateGroup, find_duplicate_groups
from osteoscan.audit.fingerprint import fingerprint_files
from osteoscan.bundle import (
    Bundle,
    check_out_dir,
    load_bundle,
    predict_proba,
    publish_bundle,
    remove_stale_staging,
    save_weights,
    staging_dir_for,
    weights_header,
)
from osteoscan.data.labels import Task
from osteoscan.data.pixels import CONTRACT_VERSION, PreparedImages, default_cache_dir, prepare
from osteoscan.data.records import Dataset, ImageRecord, Problem, list_problems, load_dataset
from osteoscan.data.splits import LeakagePlan, plan_leakage_groups, train_val_split
from osteoscan.data.transforms import Normalise
from osteoscan.errors import BadBundleError, BadConfigError, BadImageError, BadManifestError
from osteoscan.evaluation import EvaluationResult, evaluate_predictions, youden_threshold
from osteoscan.evaluation.calibration import CalibrationReport, calibration_report
from osteoscan.files import check_writable_dir
from osteoscan.metadata import (
    WEIGHTS_FILE,
    BundleMetadata,
    FitSummary,
    InputSpec,
    PretrainedWeights,
    SeenImage,
    TrainingRecord,
    json_ready,
)
from osteoscan.models import build_model, get_spec
from osteoscan.models.build import ClassifierNet
from osteoscan.models.registry import ModelSpec
from osteoscan.models.weights import WeightsSource
from osteoscan.roi.config import RoiConfig
from osteoscan.roi.summary import SUMMARY_RULE, image_rows
from osteoscan.training import FitResult, TrainConfig, fit_classifier
from osteoscan.training.config import MAX_SEED
from osteoscan.training.trainer import signals_as_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedSet:
    """Records that decoded, their class indices and letterboxed pixels, plus every skipped file.

    With a knee ROI there is one sample per knee crop: a record repeats once per knee,
    ``knees`` names each crop and ``image_ids`` (always set) says which image a sample came
    from (equal ids, same radiograph).
    """

    records: list[ImageRecord]
    targets: np.ndarray
    pixels: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    knees: list[str] = field(default_factory=list)
    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class GroupedSet:
    """A dataset ready to split: decoded once, conflicting duplicates dropped, every image in a
    leakage group (same patient or duplicate content). All arrays align with ``records``;
    ``duplicate_groups`` are the audit's groups, indexed before conflicting groups were dropped."""

    records: list[ImageRecord]
    targets: np.ndarray
    pixels: np.ndarray
    group_ids: np.ndarray
    problems: list[Problem]
    plan: LeakagePlan
    dataset: Dataset
    cache_dir: Path
    pixel_hashes: tuple[str | None, ...] = ()
    duplicate_groups: tuple[DuplicateGroup, ...] = ()
    knees: tuple[str, ...] = ()  # with a knee ROI: each sample's knee ("right", "knee 1", ...)


@dataclass(frozen=True)
class FittedModel:
    """A network fitted on one split of a :class:`GroupedSet` (indices into its arrays)."""

    net: ClassifierNet
    fit: FitResult
    weights_source: WeightsSource | None
    spec: ModelSpec
    train_index: np.ndarray
    val_index: np.ndarray
    log_dir: Path | None = None


@dataclass(frozen=True)
class TrainOutcome:
    bundle_path: Path
    validation: EvaluationResult
    skipped: list[Problem]
    metadata: BundleMetadata


@dataclass(frozen=True)
class EvaluationOutcome:
    result: EvaluationResult
    skipped: list[Problem]
    bundle_path: Path | None
    warnings: list[str] = field(default_factory=list)
    calibration: CalibrationReport | None = None  # binary task: ECE, Brier, reliability bins
    scoring: str = "per image (whole image)"  # what one scored case is (knee-ROI bundles differ)
    n_knee_crops: int | None = None  # knee-ROI bundles: how many crops the images gave

    def to_dict(self) -> dict:
        """The metrics, plus calibration and overlap warnings, as strict-JSON-ready data."""
        out = self.result.to_dict()
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        out["scoring"] = self.scoring
        out["n_knee_crops"] = self.n_knee_crops
        out["warnings"] = list(self.warnings)
        return json_ready(out)


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
    roi: RoiConfig | None = None,
) -> PreparedSet:
    """Decode every usable record once; bad files (and, with ``roi``, images where no knee was
    found) become problems, or an error when strict."""
    problems = list(dataset.problems)
    if strict and problems:
        raise BadManifestError(f"{problems[0]} (--strict: fix or remove it)")
    records, targets = dataset.for_task(task)
    prepared: PreparedImages = prepare([r.path for r in records], image_size, cache_dir, roi=roi)
    bad = [Problem(str(records[i].path), reason) for i, reason in prepared.problems]
    if strict and bad:
        raise BadImageError(f"{bad[0]} (--strict: fix or remove it)")
    kept = [records[i] for i in prepared.indices]
    kept_targets = np.asarray([targets[i] for i in prepared.indices], dtype=np.int64)
    missing = set(range(len(task.class_names))) - set(kept_targets.tolist())
    if missing:
        names = ", ".join(task.class_names[i] for i in sorted(missing))
        skipped = problems + bad
        listing = (
            f"; {len(skipped)} file(s) were skipped:\n{list_problems(skipped)}" if skipped else ""
        )
        raise BadManifestError(f"{dataset.source}: no readable images of class {names}{listing}")
    return PreparedSet(
        kept,
        kept_targets,
        prepared.pixels,
        problems + bad,
        prepared.knees,
        np.asarray(prepared.indices, dtype=np.int64),
    )


def prepare_grouped(data: Path | str | Dataset, config: TrainConfig) -> GroupedSet:
    """Read ``data``, decode it once at ``config.image_size`` (cropped to each knee with
    ``config.roi``) and plan its leakage groups: the crops of one radiograph share its group."""
    dataset = data if isinstance(data, Dataset) else load_dataset(Path(data))
    cache_dir = check_writable_dir(config.cache_dir or default_cache_dir(), "--cache-dir")
    prepared = prepare_dataset(
        dataset, config.task, config.image_size, cache_dir, config.strict, config.roi
    )
    # duplicates and patients are found among the images; each sample then joins its image
    image_of = prepared.image_ids.tolist()
    first = {image: sample for sample, image in reversed(list(enumerate(image_of)))}
    order = sorted(first)
    images = [prepared.records[first[image]] for image in order]
    paths = [r.path for r in images]
    groups = find_duplicate_groups(paths, cache_dir=cache_dir)
    hashes = [fp.pixel_hash for fp in fingerprint_files(paths, cache_dir)]  # cached just above
    plan = plan_leakage_groups(
        [r.label for r in images],
        [r.patient_id for r in images],
        [g.members for g in groups],
        keep_conflicts=config.keep_conflicts,
    )
    position = {image: k for k, image in enumerate(order)}
    group_of = dict(zip(plan.kept, plan.group_ids, strict=True))
    samples = [s for s, image in enumerate(image_of) if position[image] in group_of]
    sample_images = [position[image_of[s]] for s in samples]
    return GroupedSet(
        records=[prepared.records[s] for s in samples],
        targets=prepared.targets[samples],
        pixels=prepared.pixels[samples],
        group_ids=np.asarray([group_of[k] for k in sample_images], dtype=np.int64),
        problems=prepared.problems,
        plan=plan,
        dataset=dataset,
        cache_dir=cache_dir,
        pixel_hashes=tuple(hashes[k] for k in sample_images),
        duplicate_groups=tuple(groups),
        knees=tuple(prepared.knees[s] for s in samples) if prepared.knees else (),
    )


def fit_split(
    grouped: GroupedSet,
    train_index: np.ndarray,
    val_index: np.ndarray,
    config: TrainConfig,
    staging: Path | None = None,
    built: tuple[ClassifierNet, WeightsSource | None] | None = None,
) -> FittedModel:
    """Build ``config.model`` (or use ``built``, from :func:`build_configured`) and fit it on
    ``train_index``, early-stopping on ``val_index``. Training logs go to ``staging/logs``."""
    if built is None:
        built = build_configured(config)
    net, weights_source = built
    spec = get_spec(config.model)
    log.info(
        "training %s (%s) on %d images, validating on %d",
        config.model,
        config.mode,
        len(train_index),
        len(val_index),
    )
    with contextlib.ExitStack() as stack:
        log_dir = staging
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="osteoscan-")))
        fit = fit_classifier(
            net,
            Normalise(spec.mean, spec.std),
            (grouped.pixels[train_index], grouped.targets[train_index]),
            (grouped.pixels[val_index], grouped.targets[val_index]),
            len(config.task.class_names),
            config,
            log_dir,
        )
    return FittedModel(
        net, fit, weights_source, spec, np.asarray(train_index), np.asarray(val_index), staging
    )


def check_threshold_rule(rule: float | str) -> None:
    """Refuse a threshold rule that is neither a number in [0, 1] nor ``"youden"``."""
    if rule != "youden" and (
        isinstance(rule, bool) or not isinstance(rule, int | float) or not 0.0 <= rule <= 1.0
    ):
        raise BadConfigError(f"threshold {rule!r} must be a number in [0, 1] or 'youden'")


def build_configured(config: TrainConfig) -> tuple[ClassifierNet, WeightsSource | None]:
    """``config.model`` in ``config.mode`` with a head for the task's classes (seeded first)."""
    L.seed_everything(config.seed, workers=True, verbose=False)
    return build_model(
        config.model,
        config.mode,
        len(config.task.class_names),
        config.weights_file,
        config.weights_sha256,
    )


def choose_threshold(targets: np.ndarray, probs: np.ndarray, rule: float | str) -> float | None:
    """The binary decision threshold on the positive-class probability: a fixed number in
    [0, 1], or ``"youden"`` (maximising sensitivity + specificity - 1 on these targets).
    None for more than two classes (the arg-max decides)."""
    check_threshold_rule(rule)
    if probs.shape[1] != 2:
        return None
    if rule == "youden":
        return youden_threshold(targets, probs[:, 1])
    return float(rule)


def write_bundle(
    fitted: FittedModel,
    grouped: GroupedSet,
    val_index: np.ndarray,
    config: TrainConfig,
    out: Path | str,
    overwrite: bool = False,
) -> TrainOutcome:
    """Score ``fitted`` on ``val_index``, choose its threshold and write the bundle to ``out``.

    ``out`` may replace only an earlier bundle, and only with ``overwrite``. Logs already in
    ``fitted.log_dir`` travel with the bundle when that is ``out``'s staging folder.
    """
    out = Path(out)
    check_out_dir(out, _inputs_of(grouped), overwrite)
    class_names = config.task.class_names
    spec = fitted.spec
    val_pixels, val_targets = grouped.pixels[val_index], grouped.targets[val_index]
    val_probs = predict_proba(fitted.net, Normalise(spec.mean, spec.std), val_pixels)
    _check_finite(val_probs, "validation images", "training diverged: lower --lr and re-train")
    if grouped.knees:  # knee crops: threshold and metrics per radiograph, as evaluate scores them
        image_of = {}
        ids = [image_of.setdefault(grouped.records[i].path, len(image_of)) for i in val_index]
        rows = image_rows(val_probs, ids)
        val_probs, val_targets = val_probs[rows], val_targets[rows]
    threshold = choose_threshold(val_targets, val_probs, config.threshold)
    validation = evaluate_predictions(
        val_targets, val_probs, class_names, threshold, seed=config.seed
    )
    staging = staging_dir_for(out)
    if fitted.log_dir is None or Path(fitted.log_dir) != staging:
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        weights_sha256 = save_weights(
            fitted.net,
            staging / WEIGHTS_FILE,
            weights_header(config.model, config.mode, config.image_size, class_names),
        )
        metadata = _metadata(
            fitted, grouped, val_index, config, threshold, validation, weights_sha256
        )
        publish_bundle(fitted.net, metadata, staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("bundle written to %s", out)
    return TrainOutcome(out, validation, grouped.problems, metadata)


def train(
    data: Path | str,
    out: Path | str,
    config: TrainConfig | None = None,
    overwrite: bool = False,
) -> TrainOutcome | None:
    """Train ``config.model`` on ``data`` and write a bundle to ``out``.

    ``out`` must be new, an empty folder, or (with ``overwrite``) an earlier bundle; this and
    the cache folder are checked before any work. Ctrl-C or SIGTERM raise
    :class:`~osteoscan.errors.InterruptedRun` and leave nothing behind. Returns None on the
    non-zero ranks of a multi-process (DDP) run, which write nothing.
    """
    config = config or TrainConfig()
    config.check_runtime()
    out = Path(out)
    check_out_dir(out, [Path(data)], overwrite)
    check_writable_dir(config.cache_dir or default_cache_dir(), "--cache-dir")
    remove_stale_staging(out)
    staging = staging_dir_for(out)
    with signals_as_errors(), _removed_on_failure(staging):
        dataset = load_dataset(Path(data))
        check_out_dir(out, [r.path for r in dataset.records], overwrite)
        # the model before decoding: a wrong name or missing weights fails in seconds, not minutes
        built = build_configured(config)
        grouped = prepare_grouped(dataset, config)
        train_index, val_index = train_val_split(
            grouped.targets, grouped.group_ids, config.val_fraction, config.seed
        )
        fitted = fit_split(grouped, train_index, val_index, config, staging, built)
        if not fitted.fit.is_global_zero:
            return None
        return write_bundle(fitted, grouped, val_index, config, out, overwrite)


@contextlib.contextmanager
def _removed_on_failure(staging: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _inputs_of(grouped: GroupedSet) -> list[Path]:
    return [grouped.dataset.source, *(r.path for r in grouped.records)]


def _check_finite(probs: np.ndarray, what: str, advice: str) -> None:
    bad = int((~np.isfinite(probs)).any(axis=1).sum()) if probs.size else 0
    if bad:
        raise BadConfigError(f"the model gives non-finite probabilities for {bad} {what}; {advice}")


def _metadata(
    fitted: FittedModel,
    grouped: GroupedSet,
    val_index: np.ndarray,
    config: TrainConfig,
    threshold: float | None,
    validation: EvaluationResult,
    weights_sha256: str,
) -> BundleMetadata:
    spec, fit, source = fitted.spec, fitted.fit, fitted.weights_source
    split = dict.fromkeys(fitted.train_index.tolist(), "train")
    split |= dict.fromkeys(np.asarray(val_index).tolist(), "validation")
    seen: dict[str, SeenImage] = {}  # one entry per radiograph, also when it gave two crops
    for i, name in sorted(split.items()):
        path = str(grouped.records[i].path)
        pixel_hash = grouped.pixel_hashes[i] if grouped.pixel_hashes else None
        seen.setdefault(path, SeenImage(path, name, pixel_hash))
    images = tuple(seen.values())
    plan = grouped.plan
    return BundleMetadata(
        model=config.model,
        mode=config.mode,
        task=config.task,
        input=InputSpec(
            image_size=config.image_size,
            in_chans=spec.in_chans,
            mean=tuple(spec.mean),
            std=tuple(spec.std),
            contract_version=CONTRACT_VERSION,
        ),
        decision_threshold=threshold,
        seed=config.seed,
        weights_sha256=weights_sha256,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=versions(),
        training=TrainingRecord(
            manifest_sha256=grouped.dataset.manifest_hash(),
            source=str(Path(grouped.dataset.source).resolve()),
            n_train=len(fitted.train_index),
            n_validation=len(val_index),
            duplicate_groups=plan.n_duplicate_groups,
            conflicting_groups=plan.n_conflicting_groups,
            images_dropped_for_conflicts=len(plan.dropped_conflicting),
            skipped_files=tuple(str(p) for p in grouped.problems),
            images=images,
        ),
        fit=FitSummary(
            best_epoch=fit.best_epoch if fit.best_epoch >= 0 else None,
            best_val_auc=fit.best_val_auc if fit.best_epoch >= 0 else None,
            epochs_run=fit.epochs_run,
            precision=fit.precision,
        ),
        config=json_ready(config.to_dict()),  # as it reads back from metadata.json
        validation_metrics=json_ready(validation.to_dict()),
        pretrained=None
        if source is None
        else PretrainedWeights(source.path, source.sha256, source.origin),
        roi=config.roi,
    )


def evaluate(
    bundle: Path | str | Bundle,
    data: Path | str,
    strict: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> EvaluationOutcome:
    """Score a bundle on a labelled dataset, with the bundle's own preprocessing and threshold.

    A knee-ROI bundle crops every image as it was trained; the metrics are per radiograph (its
    label is the patient's), scored by its knee with the higher probability of osteoporosis
    (:mod:`osteoscan.roi.summary`); images with no knee found are listed as skipped.
    ``warnings`` says how many evaluation images are the same radiographs (by content) as images
    the bundle was trained or validated on.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise BadConfigError(
            f"bootstrap resamples {n_boot!r} (--bootstrap): use a whole number >= 1"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise BadConfigError(f"seed {seed!r} (--seed): use a whole number from 0 to {MAX_SEED}")
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(Path(bundle))
    cache_dir = check_writable_dir(cache_dir or default_cache_dir(), "--cache-dir")
    dataset = load_dataset(Path(data))
    roi = loaded.metadata.roi
    prepared = prepare_dataset(dataset, loaded.task, loaded.image_size, cache_dir, strict, roi)
    probs = loaded.predict_proba(prepared.pixels)
    if not np.isfinite(probs).all():
        bad = int((~np.isfinite(probs)).any(axis=1).sum())
        raise BadBundleError(
            f"{loaded.path or 'bundle'}: gives non-finite probabilities for {bad} of "
            f"{len(probs)} images (its weights are damaged or its training diverged); re-train it"
        )
    rows = image_rows(probs, prepared.image_ids)
    probs, targets = probs[rows], prepared.targets[rows]
    records = [prepared.records[i] for i in rows]
    result = evaluate_predictions(
        targets, probs, loaded.class_names, loaded.threshold, n_boot=n_boot, seed=seed
    )
    warnings = overlap_warnings(loaded.metadata.training, [r.path for r in records], cache_dir)
    for warning in warnings:
        log.info(warning)
    calibration = calibration_report(targets, probs) if len(loaded.class_names) == 2 else None
    scoring = "per image (whole image)"
    if roi is not None:
        scoring = f"per image: knee crops, each radiograph scored by {SUMMARY_RULE}"
    return EvaluationOutcome(
        result,
        prepared.problems,
        loaded.path,
        warnings,
        calibration,
        scoring,
        None if roi is None else len(prepared.knees),
    )


@dataclass(frozen=True)
class Overlap:
    """Evaluation images that are training or validation images of a bundle (indices)."""

    exact: dict[int, set[str]]
    near: dict[int, set[str]]

    def count(self, split: str | None = None) -> int:
        seen = {**self.near, **self.exact}
        return sum(1 for splits in seen.values() if split is None or split in splits)


def find_overlap(
    training: TrainingRecord, paths: Sequence[Path], cache_dir: Path | None = None
) -> Overlap:
    """Which of ``paths`` hold a bundle's training or validation images.

    Exact: the decoded pixels hash to a recorded training image's hash (any name, any format).
    Near: the audit's near-duplicate detection links the image to a training image that is still
    present at its recorded path.
    """
    fingerprints = fingerprint_files(list(paths), cache_dir)
    by_hash: dict[str, set[str]] = {}
    for image in training.images:
        if image.pixel_hash is not None:
            by_hash.setdefault(image.pixel_hash, set()).add(image.split)
    exact = {
        i: by_hash[fp.pixel_hash]
        for i, fp in enumerate(fingerprints)
        if fp.ok and fp.pixel_hash in by_hash
    }
    present = [image for image in training.images if Path(image.path).is_file()]
    near: dict[int, set[str]] = {}
    if present and paths:
        n = len(paths)
        groups = find_duplicate_groups(
            [*paths, *(Path(image.path) for image in present)], cache_dir=cache_dir
        )
        for group in groups:
            ours = [m for m in group.members if m < n and m not in exact]
            splits = {present[m - n].split for m in group.members if m >= n}
            for m in ours if splits else ():
                near.setdefault(m, set()).update(splits)
    return Overlap(exact, near)


def overlap_warnings(
    training: TrainingRecord, paths: Sequence[Path], cache_dir: Path | None = None
) -> list[str]:
    """The warning an evaluation on ``paths`` deserves, if any of them were seen in training."""
    overlap = find_overlap(training, paths, cache_dir)
    total = overlap.count()
    if not total:
        return []
    return [
        f"{total} of the {len(paths)} evaluation images are images this bundle was trained or "
        f"validated on ({overlap.count('train')} training, {overlap.count('validation')} "
        f"validation; identical in content: {len(overlap.exact)}, near duplicates: "
        f"{len(overlap.near)}): these metrics are optimistic; evaluate on images the model "
        "never saw"
    ]
