"""Run a study: every configuration on the same grouped folds, one saved unit at a time.

:func:`plan_study` resolves the configurations (weights present? scratch under --no-pretrained?)
and lists the units; :func:`run_study` prepares pixels once per image size, makes the folds,
writes ``study.json`` (data, folds per image, audit findings, externals, shortcut baseline),
probes the speed of each model, trains every unfinished unit and finally writes the report.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import logging
import platform
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np

from osteoscan.bundle import predict_proba
from osteoscan.data.transforms import Normalise
from osteoscan.errors import BadConfigError, BadManifestError, BadWeightsError, InterruptedRun
from osteoscan.files import atomic_write_json, check_writable_dir
from osteoscan.models import get_spec
from osteoscan.pipeline import GroupedSet, choose_threshold, fit_split, prepare_grouped
from osteoscan.pipeline import versions as pipeline_versions
from osteoscan.roi.config import RoiConfig
from osteoscan.roi.summary import image_rows
from osteoscan.stats import DEFAULT_BOOTSTRAP
from osteoscan.study.config import (
    NO_PRETRAINED,
    QUICK,
    StudyConfig,
    load_study_config,
)
from osteoscan.study.folds import Fold, fold_table, inner_split, make_folds
from osteoscan.study.probe import estimate_unit_s, time_batch
from osteoscan.study.units import (
    STUDY_FILE,
    Unit,
    format_duration,
    load_unit,
    save_unit,
    unit_key,
    unit_path,
)
from osteoscan.study.weights import WeightsStatus, missing_weights_message, weights_status
from osteoscan.training import TrainConfig
from osteoscan.training.precision import resolve_precision, uses_gpu

log = logging.getLogger(__name__)

STAGING_DIR = "staging"
MANY_HOURS_S = 2 * 3600


@dataclass(frozen=True)
class RunOptions:
    """How to run a study. ``train`` carries the runtime knobs (devices, precision, cache...)
    every unit's TrainConfig starts from; the study settings override its training fields."""

    config: StudyConfig = field(default_factory=load_study_config)
    quick: bool = False
    no_pretrained: bool = False
    only: tuple[str, ...] = ()
    fold: int | None = None
    repeat: int | None = None
    externals: tuple[Path, ...] = ()
    train: TrainConfig = field(default_factory=lambda: TrainConfig(progress=False))
    probe: bool = True
    write_report: bool = True
    bootstrap: int = DEFAULT_BOOTSTRAP


@dataclass(frozen=True)
class ResolvedConfiguration:
    """A configuration as it will run here: its TrainConfig and any change to its protocol."""

    name: str
    title: str
    model: str
    requested_mode: str
    published_accuracy: float | None
    train: TrainConfig
    weights: WeightsStatus
    changes: tuple[str, ...]

    @property
    def mode(self) -> str:
        return self.train.mode

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "model": self.model,
            "requested_mode": self.requested_mode,
            "mode": self.mode,
            "published_accuracy": self.published_accuracy,
            "image_size": self.train.image_size,
            "epochs": self.train.epochs,
            "batch_size": self.train.batch_size,
            "learning_rate": self.train.learning_rate,
            "patience": self.train.patience,
            "val_fraction": self.train.val_fraction,
            "augment": self.train.augment,
            "roi": None if self.train.roi is None else self.train.roi.to_dict(),
            "weights_needed": self.weights.weights,
            "weights_path": self.weights.path,
            "weights_present": self.weights.present,
            "changes": list(self.changes),
        }


@dataclass(frozen=True)
class PlannedUnit:
    unit: Unit
    configuration: ResolvedConfiguration
    done: bool
    estimate_s: float | None = None


@dataclass(frozen=True)
class StudyPlan:
    configurations: tuple[ResolvedConfiguration, ...]
    units: tuple[PlannedUnit, ...]

    @property
    def todo(self) -> list[PlannedUnit]:
        return [u for u in self.units if not u.done]

    def text(self) -> str:
        lines = [f"study plan: {len(self.units)} unit(s), {len(self.todo)} to run"]
        for c in self.configurations:
            w = c.weights
            weights = (
                "no pretrained weights needed"
                if not w.needed
                else f"needs {w.weights} at {w.path}: {'present' if w.present else 'ABSENT'}"
            )
            extra = f"  [{'; '.join(c.changes)}]" if c.changes else ""
            roi = ", knee ROI" if c.train.roi is not None else ""
            lines.append(
                f"  {c.name}: {c.model} {c.mode}, {c.train.image_size} px{roi}, {weights}{extra}"
            )
        for planned in self.units:
            state = "done" if planned.done else "to run"
            estimate = (
                f", up to {format_duration(planned.estimate_s)}"
                if planned.estimate_s is not None and not planned.done
                else ""
            )
            lines.append(f"  unit {planned.unit.id}: {state}{estimate}")
        total = sum(u.estimate_s or 0.0 for u in self.todo)
        if total:
            lines.append(f"estimated time on this machine: up to {format_duration(total)}")
            if total > MANY_HOURS_S:
                slowest = max(self.todo, key=lambda u: u.estimate_s or 0.0).configuration.name
                lines.append(
                    f"this is a many-hour job here ({slowest} dominates); use --quick on a CPU, "
                    "or spread the units over machines with --plan"
                )
        return "\n".join(lines)


@dataclass(frozen=True)
class StudyOutcome:
    out: Path
    plan: StudyPlan
    ran: tuple[str, ...]
    report: Path | None


def resolve_configurations(options: RunOptions) -> tuple[ResolvedConfiguration, ...]:
    """Each configuration's TrainConfig; stops with the missing weight files unless --no-pretrained."""
    study = options.config
    for name in options.only:
        study.get(name)
    resolved, missing = [], []
    for c in study.configurations:
        spec = get_spec(c.model)
        if c.mode not in spec.modes:
            raise BadConfigError(
                f"{study.source}: configuration {c.name!r}: {c.model} cannot run in mode "
                f"{c.mode!r}; use {' or '.join(spec.modes)}"
            )
        settings = study.settings_for(c, options.quick)
        values = settings.set_values()
        hflip = values.pop("hflip", None)
        train = replace(
            options.train,
            model=c.model,
            mode=c.mode,
            seed=study.seed,
            threshold=study.threshold,
            weights_file=Path(c.weights_file) if c.weights_file else None,
            weights_sha256=c.weights_sha256,
            roi=c.roi_config,
            **values,
        )
        if hflip is not None:
            train = replace(train, augment_config=replace(train.augment_config, hflip=hflip))
        changes = [QUICK] if options.quick else []
        status = weights_status(c.model, c.mode, c.weights_file)
        if status.needed and not status.present:
            if options.no_pretrained:
                train = replace(train, mode="scratch", weights_file=None, weights_sha256=None)
                changes.append(NO_PRETRAINED)
            elif not options.only or c.name in options.only:
                missing.append((c.name, status))
        resolved.append(
            ResolvedConfiguration(
                c.name,
                c.title,
                c.model,
                c.mode,
                c.published_accuracy,
                train,
                status,
                tuple(changes),
            )
        )
    if missing:
        raise BadWeightsError(missing_weights_message(missing))
    return tuple(resolved)


def plan_study(out: Path | str, options: RunOptions) -> StudyPlan:
    """Units selected by ``--only``/``--repeat``/``--fold``, and which already have a result file."""
    study = options.config
    if options.fold is not None and not 1 <= options.fold <= study.folds:
        raise BadConfigError(f"--fold {options.fold}: folds are numbered 1 to {study.folds}")
    if options.repeat is not None and not 1 <= options.repeat <= study.repeats:
        raise BadConfigError(
            f"--repeat {options.repeat}: repeats are numbered 1 to {study.repeats}"
        )
    configurations = resolve_configurations(options)
    units = []
    for c in configurations:
        if options.only and c.name not in options.only:
            continue
        for repeat in range(1, study.repeats + 1):
            for fold in range(1, study.folds + 1):
                if options.fold not in (None, fold) or options.repeat not in (None, repeat):
                    continue
                unit = Unit(c.name, repeat, fold)
                units.append(PlannedUnit(unit, c, unit_path(Path(out), unit).is_file()))
    return StudyPlan(configurations, tuple(units))


def versions() -> dict[str, str]:
    """The pipeline's versions plus the libraries the study's statistics use."""
    return pipeline_versions() | {name: version(name) for name in ("numpy", "scikit-learn")}


def environment(train: TrainConfig) -> dict:
    import torch

    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available() and train.accelerator in ("auto", "gpu", "cuda")
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    return {
        "versions": versions(),
        "device": device,
        "accelerator": train.accelerator,
        "devices": train.devices,
        "precision": train.precision,
        "platform": platform.platform(),
        "seed": train.seed,
    }


Setting = tuple[int, RoiConfig | None]  # how samples are decoded: image size, knee ROI or none


def _setting(train: TrainConfig) -> Setting:
    return (train.image_size, train.roi)


@dataclass(frozen=True)
class _Samples:
    """The samples of one decode setting and, for each, the index of its radiograph among the
    study's images: a whole-image sample is its image; the crops of one radiograph share it."""

    grouped: GroupedSet
    image_of: np.ndarray

    @classmethod
    def of(cls, grouped: GroupedSet, image_index: dict[str, int]) -> _Samples:
        """``grouped``'s samples whose image is in ``image_index`` (path -> index); others (an
        image dropped from the whole-image set) are left out."""
        kept = [s for s, r in enumerate(grouped.records) if str(r.path) in image_index]
        if len(kept) < len(grouped.records):
            grouped = _subset(grouped, np.asarray(kept, dtype=np.int64))
        images = [image_index[str(r.path)] for r in grouped.records]
        return cls(grouped, np.asarray(images, dtype=np.int64))

    @functools.cached_property
    def _members(self) -> dict[int, list[int]]:
        members: dict[int, list[int]] = {}
        for sample, image in enumerate(self.image_of.tolist()):
            members.setdefault(image, []).append(sample)
        return members

    def of_images(self, images: Sequence[int]) -> np.ndarray:
        """Sample indices of ``images``, image by image in the order given (a radiograph with
        no knee found has none)."""
        members = self._members
        return np.asarray([s for i in images for s in members.get(int(i), ())], dtype=np.int64)

    def per_image(self, probs: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(image indices, their probabilities) from ``probs`` of ``samples``: one row per
        radiograph, its most abnormal knee (:mod:`osteoscan.roi.summary`) when it has several."""
        ids = self.image_of[samples]
        rows = image_rows(probs, ids) if len(ids) else np.zeros(0, dtype=np.int64)
        return ids[rows], probs[rows]


def _subset(grouped: GroupedSet, keep: np.ndarray) -> GroupedSet:
    return replace(
        grouped,
        records=[grouped.records[i] for i in keep],
        targets=grouped.targets[keep],
        pixels=grouped.pixels[keep],
        group_ids=grouped.group_ids[keep],
        pixel_hashes=tuple(grouped.pixel_hashes[i] for i in keep) if grouped.pixel_hashes else (),
        knees=tuple(grouped.knees[i] for i in keep) if grouped.knees else (),
    )


@dataclass
class _Data:
    """The study's radiographs (whole images: folds, groups and study.json are over them), the
    samples of each decode setting, the folds, and the external sets likewise."""

    images: GroupedSet
    sets: dict[Setting, _Samples]
    folds: list[Fold]
    external_images: dict[str, GroupedSet]
    externals: dict[str, dict[Setting, _Samples]]
    external_kept: dict[str, list[int]]


def run_study(data: Path | str, out: Path | str, options: RunOptions | None = None) -> StudyOutcome:
    """Run (or resume) a study of ``data`` into ``out``; returns what ran and the report path."""
    options = options or RunOptions()
    out = check_writable_dir(out, "--out")
    plan = plan_study(out, options)
    prepared = _prepare(Path(data), options, plan)
    _write_study_file(out, Path(data), options, plan, prepared)
    keys = {p.unit.id: _unit_key(p, prepared) for p in plan.units}
    existing = {p.unit.id: load_unit(out, p.unit, keys[p.unit.id]) for p in plan.units}
    # configurations that run identically here (e.g. frozen and fine-tuned under --no-pretrained)
    # share one computation: the result is computed once and copied under each name
    by_key = {keys[i]: result for i, result in existing.items() if result is not None}
    plan = StudyPlan(
        plan.configurations,
        tuple(replace(p, done=existing[p.unit.id] is not None) for p in plan.units),
    )
    if options.probe and plan.todo:
        plan = _with_estimates(plan, prepared)
    seen = set(by_key)
    units = []
    for planned in plan.units:
        key = keys[planned.unit.id]
        units.append(
            replace(planned, estimate_s=0.0) if key in seen and not planned.done else planned
        )
        seen.add(key)
    plan = StudyPlan(plan.configurations, tuple(units))
    log.info("%s", plan.text())
    ran = []
    spent, estimated = 0.0, 0.0
    todo = plan.todo
    other_rank = False
    with _signals_as_interrupts() as caught:
        for index, planned in enumerate(todo):
            start = time.perf_counter()
            key = keys[planned.unit.id]
            try:
                result = (
                    _copy_unit(out, planned, by_key[key])
                    if key in by_key
                    else _run_unit(out, planned, prepared, key, options)
                )
            except (KeyboardInterrupt, SystemExit, InterruptedRun) as exc:
                # the trainer turns a signal into its own InterruptedRun; the study's message
                # (what is saved, how to continue) replaces it
                number = (
                    exc.signal_number
                    if isinstance(exc, InterruptedRun)
                    else caught[-1]
                    if caught
                    else signal.SIGINT
                )
                raise InterruptedRun(
                    f"study interrupted during unit {planned.unit.id}; {len(ran)} unit(s) finished "
                    f"in this run are saved in {out / 'units'}; run the same command again to "
                    "continue",
                    int(number),
                ) from None
            if result is None:  # a non-zero DDP rank: rank 0 writes units and the report
                other_rank = True
                continue
            by_key[key] = result
            ran.append(planned.unit.id)
            spent += time.perf_counter() - start
            estimated += planned.estimate_s or 0.0
            left = todo[index + 1 :]
            remaining = sum(u.estimate_s or 0.0 for u in left) * (
                spent / estimated if estimated else 1
            )
            log.info(
                "unit %s finished in %s (%d of %d); about %s left",
                planned.unit.id,
                format_duration(time.perf_counter() - start),
                index + 1,
                len(todo),
                format_duration(remaining) if estimated else "an unknown time",
            )
    with contextlib.suppress(OSError):  # empty once every unit finished
        (out / STAGING_DIR).rmdir()
    report = None
    if options.write_report and not other_rank:
        from osteoscan.study.report import write_report

        report = write_report(out, options.bootstrap)
    return StudyOutcome(out, plan, tuple(ran), report)


@contextlib.contextmanager
def _signals_as_interrupts() -> Iterator[list[int]]:
    """SIGTERM (a scheduler's stop) behaves like Ctrl-C; the caught signal numbers are yielded."""
    caught: list[int] = []

    def handler(number, frame):
        caught.append(number)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield caught
        return
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, previous)


def _base_train(options: RunOptions, image_size: int) -> TrainConfig:
    return replace(options.train, image_size=image_size)


def _prepare(data: Path, options: RunOptions, plan: StudyPlan) -> _Data:
    settings = sorted({_setting(c.train) for c in plan.configurations}, key=_setting_order)
    sizes = sorted({size for size, _ in settings})
    whole = {s: prepare_grouped(data, _base_train(options, s)) for s in sizes}
    images = whole[sizes[0]]
    paths = [r.path for r in images.records]
    for size, grouped in whole.items():
        if [r.path for r in grouped.records] != paths:
            raise BadManifestError(
                f"{data}: the images that decode differ between {sizes[0]} and {size} px; "
                "use one image_size for every configuration or remove the failing files"
            )
    study = options.config
    folds = make_folds(images.targets, images.group_ids, study.folds, study.repeats, study.seed)
    sets = _sets(data, options, settings, whole, images)
    external_images, externals, kept = {}, {}, {}
    for source in options.externals:
        name = _external_name(source, externals)
        ext_whole = {s: prepare_grouped(source, _base_train(options, s)) for s in sizes}
        external_images[name] = ext_whole[sizes[0]]
        externals[name] = _sets(source, options, settings, ext_whole, external_images[name])
        kept[name] = _external_without_overlap(paths, external_images[name], images.cache_dir)
    return _Data(images, sets, folds, external_images, externals, kept)


def _setting_order(setting: Setting) -> tuple:
    size, roi = setting
    return (roi is not None, size, repr(roi))


def _sets(
    data: Path,
    options: RunOptions,
    settings: Sequence[Setting],
    whole: dict[int, GroupedSet],
    images: GroupedSet,
) -> dict[Setting, _Samples]:
    """The samples of every setting, each mapped onto ``images``; crops are decoded (and their
    knees found) once per setting and cached like whole images."""
    index = {str(r.path): i for i, r in enumerate(images.records)}
    sets = {}
    for size, roi in settings:
        grouped = (
            whole[size]
            if roi is None
            else prepare_grouped(data, replace(_base_train(options, size), roi=roi))
        )
        sets[(size, roi)] = _Samples.of(grouped, index)
        if roi is not None:
            found = len(set(sets[(size, roi)].image_of.tolist()))
            log.info(
                "knee ROI at %d px: %d crop(s) from %d of %d image(s) of %s",
                size,
                len(grouped.records),
                found,
                len(images.records),
                data,
            )
    return sets


def _external_name(source: Path, taken: dict) -> str:
    name = Path(source).name or str(source)
    while name in taken:
        name += "'"
    return name


def _external_without_overlap(
    study_paths: Sequence[Path], external: GroupedSet, cache_dir: Path
) -> list[int]:
    """Indices of external records that are no exact or near duplicate of any study image."""
    from osteoscan.audit import find_duplicate_groups

    n = len(study_paths)
    ext_paths = [r.path for r in external.records]
    groups = find_duplicate_groups([*study_paths, *ext_paths], cache_dir=cache_dir)
    overlap = {m - n for g in groups if any(m < n for m in g.members) for m in g.members if m >= n}
    if overlap:
        log.warning(
            "%d image(s) of the external set duplicate study images and are removed from it",
            len(overlap),
        )
    return [i for i in range(len(ext_paths)) if i not in overlap]


def _unit_key(planned: PlannedUnit, prepared: _Data) -> str:
    c, unit = planned.configuration, planned.unit
    images = prepared.images
    fold = _fold_of(prepared, unit)
    identity = {
        "model": c.model,
        "mode": c.mode,
        "task": c.train.task.to_dict(),
        "training": {
            k: getattr(c.train, k)
            for k in (
                "image_size",
                "epochs",
                "batch_size",
                "learning_rate",
                "weight_decay",
                "warmup_epochs",
                "patience",
                "val_fraction",
                "seed",
                "augment",
                "frozen_views",
                "threshold",
                "weights_sha256",
                "keep_conflicts",
            )
        }
        | {"augment_config": str(c.train.augment_config)},
        "data": images.dataset.manifest_hash(),
        "test": [str(images.records[i].path) for i in fold.test_index],
    }
    if c.train.roi is not None:  # whole-image units keep the keys they had before ROI existed
        identity["roi"] = c.train.roi.to_dict()
    return unit_key(identity)


def _fold_of(prepared: _Data, unit: Unit) -> Fold:
    return next(f for f in prepared.folds if (f.repeat, f.fold) == (unit.repeat, unit.fold))


def _with_estimates(plan: StudyPlan, prepared: _Data) -> StudyPlan:
    timings = {}
    n = len(prepared.images.records)
    n_ext = sum(len(k) for k in prepared.external_kept.values())
    updated = []
    for planned in plan.units:
        c = planned.configuration.train
        if planned.done:
            updated.append(planned)
            continue
        key = (c.model, c.mode, c.image_size, c.batch_size)
        if key not in timings:
            device = "cuda" if uses_gpu(c.accelerator) else "cpu"
            timings[key] = time_batch(*key, resolve_precision(c.precision, c.accelerator), device)
            log.info(
                "timing probe %s %s at %d px, batch %d: %.2f s per training step",
                *key,
                timings[key].forward_backward_s,
            )
        n_test = n / max(f.fold for f in prepared.folds)
        n_train = n - n_test
        n_val = n_train * c.val_fraction
        estimate = estimate_unit_s(
            timings[key],
            c.mode,
            c.epochs,
            c.batch_size,
            round(n_train - n_val),
            round(n_val),
            round(n_val + n_test + n_ext),
            c.frozen_views if c.augment else 1,
        )
        updated.append(replace(planned, estimate_s=estimate))
    return StudyPlan(plan.configurations, tuple(updated))


def _run_unit(
    out: Path, planned: PlannedUnit, prepared: _Data, key: str, options: RunOptions
) -> dict | None:
    c, unit = planned.configuration, planned.unit
    train = c.train
    images = prepared.images
    samples = prepared.sets[_setting(train)]
    grouped = samples.grouped
    fold = _fold_of(prepared, unit)
    # the inner split is over radiographs, so a configuration and its knee-ROI twin stop early
    # on the same images; a radiograph's crops all fall on its side
    fit_images, val_images = inner_split(
        images.targets, images.group_ids, fold.train_index, train.val_fraction, train.seed
    )
    fit_index, val_index = samples.of_images(fit_images), samples.of_images(val_images)
    test_index = samples.of_images(fold.test_index)
    staging = out / STAGING_DIR / unit.id
    shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "unit %s: training %s (%s) on %d %s, early stopping on %d, testing on %d",
        unit.id,
        c.model,
        c.mode,
        len(fit_index),
        "images" if train.roi is None else "knee crops",
        len(val_index),
        len(test_index),
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    fitted = fit_split(grouped, fit_index, val_index, train, staging)
    if not fitted.fit.is_global_zero:
        return None
    train_seconds = time.perf_counter() - start

    normaliser = Normalise(fitted.spec.mean, fitted.spec.std)

    def per_image(of: _Samples, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = predict_proba(fitted.net, normaliser, of.grouped.pixels[index], train.batch_size)
        return of.per_image(probs, index)

    val_ids, val_probs = per_image(samples, val_index)
    threshold = choose_threshold(images.targets[val_ids], val_probs, train.threshold)
    test_ids, test_probs = per_image(samples, test_index)
    external = {}
    for name, sets in prepared.externals.items():
        kept = prepared.external_kept[name]
        of = sets[_setting(train)]
        ids, probs = per_image(of, of.of_images(kept))
        by_image = dict(zip(ids.tolist(), probs[:, 1], strict=True))
        # a kept external image without a knee found has no probability (null)
        external[name] = [None if i not in by_image else round(float(by_image[i]), 6) for i in kept]
    source = fitted.weights_source
    result = {
        "unit": unit.id,
        "key": key,
        "configuration": c.name,
        "repeat": unit.repeat,
        "fold": unit.fold,
        "model": c.model,
        "mode": c.mode,
        "changes": list(c.changes),
        "test_paths": [str(images.records[i].path) for i in test_ids],
        "test_targets": images.targets[test_ids].tolist(),
        "test_probabilities": _rounded(test_probs[:, 1]),
        "threshold": threshold,
        "threshold_rule": options.config.threshold_rule(),
        "n_fit": len(fit_index),
        "n_validation": len(val_index),
        "n_test_images_without_knee": len(fold.test_index) - len(test_ids),
        "fit": {
            "best_epoch": fitted.fit.best_epoch,
            "best_val_auc": fitted.fit.best_val_auc,
            "epochs_run": fitted.fit.epochs_run,
            "precision": fitted.fit.precision,
        },
        "learning_curve": read_learning_curve(staging),
        "seconds": round(time.perf_counter() - start, 2),
        "train_seconds": round(train_seconds, 2),
        "cpu_seconds": round(time.process_time() - cpu_start, 2),
        "estimate_seconds": None if planned.estimate_s is None else round(planned.estimate_s, 1),
        "weights": None if source is None else {"file": source.path, "sha256": source.sha256},
        "external_probabilities": external,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": environment(train)["device"],
    }
    save_unit(out, unit, result)
    shutil.rmtree(staging, ignore_errors=True)
    return result


def _copy_unit(out: Path, planned: PlannedUnit, result: dict) -> dict:
    """The result of an identical unit of another configuration, saved under this one's name."""
    unit = planned.unit
    copied = result | {
        "unit": unit.id,
        "configuration": planned.configuration.name,
        "changes": list(planned.configuration.changes),
        "same_computation_as": result.get("same_computation_as", result["unit"]),
        "same_computation_as_configuration": result.get(
            "same_computation_as_configuration", result["configuration"]
        ),
    }
    log.info("unit %s: identical to %s here, result reused", unit.id, copied["same_computation_as"])
    save_unit(out, unit, copied)
    return copied


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def read_learning_curve(staging: Path) -> list[dict]:
    """Per-epoch validation (and training-loss) values from Lightning's CSV log."""
    logs = sorted(Path(staging).glob("logs/version_*/metrics.csv"))
    if not logs:
        return []
    by_epoch: dict[int, dict] = {}
    with open(logs[-1], newline="") as fh:
        for row in csv.DictReader(fh):
            if not row.get("epoch"):
                continue
            entry = by_epoch.setdefault(int(float(row["epoch"])), {})
            for name in ("val_auc", "val_loss", "val_acc", "train_loss"):
                if row.get(name):
                    entry[name] = round(float(row[name]), 6)
    return [{"epoch": e} | values for e, values in sorted(by_epoch.items())]


def _write_study_file(
    out: Path, data: Path, options: RunOptions, plan: StudyPlan, prepared: _Data
) -> None:
    """Everything about the study that is not one unit, written before any training."""
    first = prepared.images
    targets = first.targets
    table = fold_table(prepared.folds, len(targets))
    class_names = list(options.train.task.class_names)
    shortcut = _shortcut(first, prepared, options)
    groups = first.duplicate_groups
    images = [
        {
            "path": str(r.path),
            "label": class_names[int(t)],
            "target": int(t),
            "patient_id": r.patient_id,
            "group": int(g),
            "folds": folds,
        }
        for r, t, g, folds in zip(first.records, targets, first.group_ids, table, strict=True)
    ]
    externals = {}
    for name, grouped in prepared.external_images.items():
        kept = prepared.external_kept[name]
        removed = sorted(set(range(len(grouped.records))) - set(kept))
        externals[name] = {
            "source": str(grouped.dataset.source),
            "paths": [str(grouped.records[i].path) for i in kept],
            "targets": [int(grouped.targets[i]) for i in kept],
            "removed_as_duplicates_of_study_images": [
                str(grouped.records[i].path) for i in removed
            ],
            "skipped_files": [str(p) for p in grouped.problems],
        }
    study = {
        "data": str(data.resolve()),
        "manifest_sha256": first.dataset.manifest_hash(),
        "class_names": class_names,
        "task": options.train.task.to_dict(),
        "config": options.config.to_dict(),
        "quick": options.quick,
        "no_pretrained": options.no_pretrained,
        "threshold_rule": options.config.threshold_rule(),
        "configurations": [c.to_dict() for c in plan.configurations],
        "reference": options.config.reference,
        "units": [
            Unit(c.name, r, f).id
            for c in plan.configurations
            for r in range(1, options.config.repeats + 1)
            for f in range(1, options.config.folds + 1)
        ],
        "summary": {
            "images_listed": len(first.dataset.records),
            "images_used": len(first.records),
            "class_counts": {n: int(np.sum(targets == i)) for i, n in enumerate(class_names)},
            "skipped_files": [str(p) for p in first.problems],
            "exact_duplicate_groups": sum(g.kind == "exact" for g in groups),
            "near_duplicate_groups": sum(g.kind == "near" for g in groups),
            "conflicting_label_groups": first.plan.n_conflicting_groups,
            "images_dropped_for_conflicting_labels": len(first.plan.dropped_conflicting),
            "leakage_groups": len(set(first.group_ids)),
            "patients": len({r.patient_id for r in first.records if r.patient_id}),
        },
        "images": images,
        "shortcut_baseline": shortcut,
        "externals": externals,
        "environment": environment(replace(options.train, seed=options.config.seed)),
    }
    atomic_write_json(out / STUDY_FILE, study)


def _shortcut(grouped: GroupedSet, prepared: _Data, options: RunOptions) -> dict:
    from osteoscan.study.shortcut_baseline import shortcut_probabilities

    probabilities = shortcut_probabilities(
        [r.path for r in grouped.records],
        grouped.targets,
        prepared.folds,
        grouped.cache_dir,
        options.config.seed,
    )
    return {
        "description": "random forest on non-image file features only (size, format, borders...)",
        "probabilities": {str(r): _rounded(p) for r, p in probabilities.items()},
    }
