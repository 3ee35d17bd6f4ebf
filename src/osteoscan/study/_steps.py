"""The training steps the study needs, built from today's pipeline pieces.

The pipeline exposes the same steps publicly (``prepare_grouped``, ``fit_split``,
``choose_threshold``); this adapter has those names and signatures so that swapping it for the
pipeline's functions is a one-line import change. Nothing else in the study trains a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from osteoscan.audit import find_duplicate_groups
from osteoscan.bundle import Bundle
from osteoscan.data.pixels import default_cache_dir
from osteoscan.data.records import Dataset, ImageRecord, Problem, load_dataset
from osteoscan.data.splits import LeakagePlan, plan_leakage_groups
from osteoscan.data.transforms import Normalise
from osteoscan.evaluation import youden_threshold
from osteoscan.models import build_model, get_spec
from osteoscan.models.weights import WeightsSource
from osteoscan.pipeline import prepare_dataset
from osteoscan.training import TrainConfig, fit_classifier
from osteoscan.training.fit import FitResult


@dataclass(frozen=True)
class GroupedSet:
    """Decoded records of a dataset, their targets and pixels, and their leakage groups."""

    records: list[ImageRecord]
    targets: np.ndarray
    pixels: np.ndarray
    group_ids: list[int]
    problems: list[Problem]
    plan: LeakagePlan
    dataset: Dataset
    cache_dir: Path
    duplicate_groups: list = field(default_factory=list)


@dataclass(frozen=True)
class FittedModel:
    net: object
    fit: FitResult
    weights_source: WeightsSource | None


def prepare_grouped(data: Path | str | Dataset, config: TrainConfig) -> GroupedSet:
    """Decode once at ``config.image_size``, find duplicate groups, drop conflicting groups."""
    dataset = data if isinstance(data, Dataset) else load_dataset(Path(data))
    cache_dir = config.cache_dir or default_cache_dir()
    prepared = prepare_dataset(dataset, config.task, config.image_size, cache_dir, config.strict)
    groups = find_duplicate_groups([r.path for r in prepared.records], cache_dir=cache_dir)
    plan = plan_leakage_groups(
        [r.label for r in prepared.records],
        [r.patient_id for r in prepared.records],
        [g.members for g in groups],
        keep_conflicts=config.keep_conflicts,
    )
    return GroupedSet(
        records=[prepared.records[i] for i in plan.kept],
        targets=prepared.targets[plan.kept],
        pixels=prepared.pixels[plan.kept],
        group_ids=plan.group_ids,
        problems=prepared.problems,
        plan=plan,
        dataset=dataset,
        cache_dir=cache_dir,
        duplicate_groups=groups,
    )


def fit_split(
    grouped: GroupedSet,
    train_index: np.ndarray,
    val_index: np.ndarray,
    config: TrainConfig,
    staging: Path | None = None,
) -> FittedModel:
    """Build ``config.model`` and fit it on ``train_index``, early-stopping on ``val_index``."""
    net, source = build_model(
        config.model,
        config.mode,
        len(config.task.class_names),
        config.weights_file,
        config.weights_sha256,
    )
    spec = get_spec(config.model)
    fit = fit_classifier(
        net,
        Normalise(spec.mean, spec.std),
        (grouped.pixels[train_index], grouped.targets[train_index]),
        (grouped.pixels[val_index], grouped.targets[val_index]),
        len(config.task.class_names),
        config,
        staging,
    )
    return FittedModel(net, fit, source)


def predict_proba(fitted: FittedModel, config: TrainConfig, pixels: np.ndarray) -> np.ndarray:
    """Class probabilities of prepared pixels, with the model's own normalisation."""
    spec = get_spec(config.model)
    metadata = {
        "class_names": list(config.task.class_names),
        "input": {"mean": list(spec.mean), "std": list(spec.std)},
    }
    return Bundle(fitted.net, metadata).predict_proba(pixels)


def choose_threshold(targets: np.ndarray, probs: np.ndarray, rule: float | str) -> float | None:
    """The decision threshold by ``rule`` ('youden' or a number); None for multi-class."""
    if probs.shape[1] != 2:
        return None
    return youden_threshold(targets, probs[:, 1]) if rule == "youden" else float(rule)
