"""The study's YAML schema as frozen dataclasses; unknown keys are an error that names them.

The six published configurations and their published accuracies live once, in the shipped
``default_study.yaml`` (see :func:`default_config_path`); this module only reads and checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from osteoscan.errors import BadConfigError
from osteoscan.roi.config import ROI_KINDS, RoiConfig

DEFAULT_CONFIG_NAME = "default_study.yaml"
# studies shipped in the package; ``--config NAME`` picks one (a path names your own file)
PACKAGED_STUDIES = {"default": DEFAULT_CONFIG_NAME, "transfer": "transfer_study.yaml"}
THRESHOLD_RULE = "youden"
NO_PRETRAINED = "no ImageNet weights (--no-pretrained): trained from random initialisation"
QUICK = "quick CPU setting (--quick)"


def default_config_path() -> Path:
    """The packaged default study (the published six configurations): copy it to edit it."""
    return packaged_config_path("default")


def packaged_config_path(name: str) -> Path:
    """The packaged study called ``name`` (a key of :data:`PACKAGED_STUDIES`): copy it to edit it."""
    if name not in PACKAGED_STUDIES:
        raise BadConfigError(
            f"no packaged study named {name!r}; choose from {', '.join(PACKAGED_STUDIES)} "
            "or give the path of a study YAML file"
        )
    return Path(str(files("osteoscan.study").joinpath(PACKAGED_STUDIES[name])))


@dataclass(frozen=True)
class TrainingSettings:
    """Training knobs a study may set; None leaves the value to a lower level (or TrainConfig)."""

    image_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    warmup_epochs: float | None = None
    patience: int | None = None
    val_fraction: float | None = None
    augment: bool | None = None
    hflip: bool | None = None
    frozen_views: int | None = None

    def over(self, base: TrainingSettings) -> TrainingSettings:
        """These settings on top of ``base`` (values set here win)."""
        return replace(base, **{k: v for k, v in self.set_values().items()})

    def set_values(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


TRAINING_KEYS = tuple(f.name for f in fields(TrainingSettings))
_TYPES = {
    "image_size": int,
    "epochs": int,
    "batch_size": int,
    "patience": int,
    "frozen_views": int,
    "lr": float,
    "weight_decay": float,
    "warmup_epochs": float,
    "val_fraction": float,
    "augment": bool,
    "hflip": bool,
}


@dataclass(frozen=True)
class Configuration:
    """One arm of the comparison: a model, a mode and how it is trained."""

    name: str
    model: str
    mode: str
    label: str = ""
    published_accuracy: float | None = None
    weights_file: str | None = None
    weights_sha256: str | None = None
    training: TrainingSettings = TrainingSettings()
    roi: str = "none"  # one of ROI_KINDS: "knee" trains on one crop per knee (RoiConfig defaults)

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def roi_config(self) -> RoiConfig | None:
        """The TrainConfig.roi of this configuration."""
        return RoiConfig() if self.roi == "knee" else None


@dataclass(frozen=True)
class StudyConfig:
    configurations: tuple[Configuration, ...]
    reference: str
    seed: int = 0
    folds: int = 5
    repeats: int = 1
    threshold: float | str = THRESHOLD_RULE
    training: TrainingSettings = TrainingSettings()
    quick: TrainingSettings = TrainingSettings()
    source: str = ""

    def get(self, name: str) -> Configuration:
        for configuration in self.configurations:
            if configuration.name == name:
                return configuration
        raise BadConfigError(
            f"no configuration named {name!r} in {self.source}; "
            f"choose from {', '.join(c.name for c in self.configurations)}"
        )

    def settings_for(self, configuration: Configuration, quick: bool) -> TrainingSettings:
        """Study defaults, then the configuration's own keys, then (with --quick) the quick block."""
        settings = configuration.training.over(self.training)
        return self.quick.over(settings) if quick else settings

    def threshold_rule(self) -> str:
        if self.threshold == THRESHOLD_RULE:
            return (
                "Youden's J maximised on each fold's inner validation split (never the test fold)"
            )
        return f"fixed at {self.threshold}"

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "reference": self.reference,
            "seed": self.seed,
            "folds": self.folds,
            "repeats": self.repeats,
            "threshold": self.threshold,
            "training": self.training.set_values(),
            "quick": self.quick.set_values(),
            "configurations": [
                {
                    "name": c.name,
                    "label": c.label,
                    "model": c.model,
                    "mode": c.mode,
                    "published_accuracy": c.published_accuracy,
                    "weights_file": c.weights_file,
                    "weights_sha256": c.weights_sha256,
                    "roi": c.roi,
                    "training": c.training.set_values(),
                }
                for c in self.configurations
            ],
        }


_TOP_KEYS = {
    "configurations",
    "reference",
    "seed",
    "folds",
    "repeats",
    "threshold",
    "training",
    "quick",
}
_CONFIG_KEYS = {
    "name",
    "model",
    "mode",
    "label",
    "published_accuracy",
    "weights_file",
    "weights_sha256",
    "roi",
}
_MODES = ("finetune", "frozen", "scratch")


def load_study_config(path: Path | str | None = None) -> StudyConfig:
    """Read and check a study YAML file, or the packaged study of that name (``"transfer"``);
    default: the packaged six-configuration study."""
    import yaml

    if path is None or str(path) in PACKAGED_STUDIES:
        path = packaged_config_path(str(path or "default"))
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadConfigError(
            f"{path}: cannot read the study config ({exc.strerror}); give a study YAML file or "
            f"a packaged study: {', '.join(PACKAGED_STUDIES)}"
        ) from None
    except yaml.YAMLError as exc:
        raise BadConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_study_config(document, str(path))


def parse_study_config(document: Any, source: str) -> StudyConfig:
    """Build a StudyConfig from a parsed YAML document; every error names ``source``."""
    top = _mapping(document, source, "the document")
    _no_unknown(top, _TOP_KEYS, source, "top level")
    items = top.get("configurations")
    if not isinstance(items, list) or not items:
        raise BadConfigError(f"{source}: needs a non-empty 'configurations:' list")
    configurations = tuple(_configuration(item, source, i) for i, item in enumerate(items, 1))
    names = [c.name for c in configurations]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BadConfigError(f"{source}: configuration name(s) {', '.join(repeated)} used twice")
    reference = top.get("reference", names[0])
    if reference not in names:
        raise BadConfigError(
            f"{source}: reference {reference!r} is not a configuration; choose from {', '.join(names)}"
        )
    threshold = top.get("threshold", THRESHOLD_RULE)
    if threshold != THRESHOLD_RULE and not (
        isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 < threshold < 1
    ):
        raise BadConfigError(f"{source}: threshold {threshold!r} must be 'youden' or in (0, 1)")
    study = StudyConfig(
        configurations=configurations,
        reference=reference,
        seed=_typed(top, "seed", int, source, "top level", 0),
        folds=_typed(top, "folds", int, source, "top level", 5),
        repeats=_typed(top, "repeats", int, source, "top level", 1),
        threshold=threshold if threshold == THRESHOLD_RULE else float(threshold),
        training=_training(top.get("training", {}), source, "training"),
        quick=_training(top.get("quick", {}), source, "quick"),
        source=source,
    )
    return check_counts(study)


def check_counts(study: StudyConfig) -> StudyConfig:
    if study.folds < 2:
        raise BadConfigError(f"{study.source}: folds {study.folds} must be at least 2")
    if study.repeats < 1:
        raise BadConfigError(f"{study.source}: repeats {study.repeats} must be at least 1")
    return study


def _configuration(item: Any, source: str, index: int) -> Configuration:
    where = f"configuration {index}"
    item = _mapping(item, source, where)
    _no_unknown(item, _CONFIG_KEYS | set(TRAINING_KEYS), source, where)
    for key in ("name", "model", "mode"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise BadConfigError(f"{source}: {where} needs '{key}:' (a non-empty string)")
    where = f"configuration {item['name']!r}"
    if item["mode"] not in _MODES:
        raise BadConfigError(
            f"{source}: {where}: mode {item['mode']!r} is not one of {', '.join(_MODES)}"
        )
    published = item.get("published_accuracy")
    if published is not None and not (isinstance(published, int | float) and 0 <= published <= 1):
        raise BadConfigError(f"{source}: {where}: published_accuracy must be a fraction in [0, 1]")
    roi = item.get("roi", "none")
    if roi not in ROI_KINDS:
        raise BadConfigError(f"{source}: {where}: roi {roi!r} is not one of {', '.join(ROI_KINDS)}")
    return Configuration(
        name=item["name"],
        model=item["model"],
        mode=item["mode"],
        label=str(item.get("label", "")),
        published_accuracy=None if published is None else float(published),
        weights_file=item.get("weights_file"),
        weights_sha256=item.get("weights_sha256"),
        training=_training({k: v for k, v in item.items() if k in TRAINING_KEYS}, source, where),
        roi=roi,
    )


def _training(block: Any, source: str, where: str) -> TrainingSettings:
    block = _mapping(block or {}, source, where)
    _no_unknown(block, set(TRAINING_KEYS), source, where)
    return TrainingSettings(**{k: _typed(block, k, _TYPES[k], source, where, None) for k in block})


def _typed(block: Mapping, key: str, kind: type, source: str, where: str, default: Any) -> Any:
    if key not in block or block[key] is None:
        return default
    value = block[key]
    ok = (
        isinstance(value, bool)
        if kind is bool
        else (
            isinstance(value, int | float if kind is float else int) and not isinstance(value, bool)
        )
    )
    if not ok:
        raise BadConfigError(f"{source}: {where}: {key} {value!r} must be {kind.__name__}")
    if kind is not bool and value < 0:
        raise BadConfigError(f"{source}: {where}: {key} {value!r} must not be negative")
    return kind(value)


def _mapping(value: Any, source: str, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise BadConfigError(f"{source}: {where} must be a mapping of keys to values")
    return value


def _no_unknown(block: Mapping, allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(str(k) for k in block if k not in allowed)
    if unknown:
        raise BadConfigError(
            f"{source}: {where}: unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
