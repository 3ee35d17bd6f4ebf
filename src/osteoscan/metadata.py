"""A bundle's ``metadata.json``: one typed, versioned schema, read and written only here.

Everything downstream of training (evaluate, predict, explain, export, serve, the study) reads
preprocessing and the decision rule from :class:`BundleMetadata`, never from re-typed constants.
This module imports no torch, so the slim runtime (onnxruntime only) reads bundles too.

:func:`BundleMetadata.from_dict` validates every field (types, ranges, agreement of the class names
with the task) and raises :class:`~osteoscan.errors.BadBundleError` naming the file and the field,
so a damaged or edited bundle is refused before it predicts anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from osteoscan.data.labels import Task
from osteoscan.data.pixels import CONTRACT_VERSION
from osteoscan.errors import BadBundleError, BadConfigError
from osteoscan.htmlpage import SCREENING_NOTICE
from osteoscan.roi.config import RoiConfig

BUNDLE_FORMAT = 2
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
INTENSITY_CONTRACT = (
    "single channel float in [0,1], bone bright (DICOM MONOCHROME1 inverted, rescale and VOI "
    "window applied), EXIF orientation applied, letterboxed (aspect kept, black padding) to "
    "image_size x image_size, antialiased bilinear resize"
)
MIN_IMAGE_SIZE = 8
ONNX_PRECISIONS = ("fp32", "int8")


def json_ready(value: Any) -> Any:
    """``value`` as strict-JSON-ready plain data: tuples to lists, paths to strings, numpy
    scalars to Python numbers, and every non-finite float (NaN, +-inf) to ``None``."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class InputSpec:
    """How pixels must be prepared for the network: the one preprocessing contract."""

    image_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    contract_version: int
    intensity_contract: str = INTENSITY_CONTRACT


@dataclass(frozen=True)
class PretrainedWeights:
    """The pretrained file a fine-tuned or frozen model started from (provenance)."""

    path: str
    sha256: str
    origin: str = ""


SPLITS = ("train", "validation")


@dataclass(frozen=True)
class SeenImage:
    """One image the bundle was trained or validated on: where it was and what it held.

    ``pixel_hash`` is the audit's hash of the decoded pixels (equal for a renamed or re-encoded
    copy); ``None`` when the audit could not fingerprint the file.
    """

    path: str
    split: str  # one of SPLITS
    pixel_hash: str | None = None


@dataclass(frozen=True)
class TrainingRecord:
    """What the bundle was trained on, so a later evaluation can be checked for overlap."""

    manifest_sha256: str
    source: str
    n_train: int
    n_validation: int
    duplicate_groups: int
    conflicting_groups: int
    images_dropped_for_conflicts: int
    skipped_files: tuple[str, ...] = ()
    images: tuple[SeenImage, ...] = ()

    @property
    def validation_images(self) -> tuple[str, ...]:
        return tuple(image.path for image in self.images if image.split == "validation")


@dataclass(frozen=True)
class FitSummary:
    best_epoch: int | None
    best_val_auc: float | None
    epochs_run: int
    precision: str


@dataclass(frozen=True)
class Calibration:
    """Temperature scaling and the operating threshold fitted on held-out labelled data.

    ``threshold`` applies to temperature-scaled probabilities (None for the three-class task);
    ``threshold_rule`` says how it was chosen. The fitted-on data is named by its source and
    manifest sha256, so a later evaluation on the same images can be recognised.
    """

    temperature: float
    threshold: float | None
    threshold_rule: str
    target_sensitivity: float | None
    sensitivity: float | None
    sensitivity_ci: tuple[float, float] | None
    specificity: float | None
    specificity_ci: tuple[float, float] | None
    threshold_ci: tuple[float, float] | None
    data_source: str
    data_manifest_sha256: str
    n_images: int
    ece_before: float
    ece_after: float
    brier_before: float
    brier_after: float
    created: str


@dataclass(frozen=True)
class OnnxExport:
    """One ONNX file inside the bundle (input: normalised pixels, output: logits) and its check.

    ``max_probability_difference`` is the largest absolute difference of class probabilities on
    ``n_check_images`` real images, against torch for fp32 and against the fp32 ONNX model for
    int8; it was within ``tolerance`` or the file would not be here.
    """

    file: str
    sha256: str
    precision: str
    opset: int
    max_probability_difference: float
    tolerance: float
    n_check_images: int
    calibration_images: tuple[str, ...] = ()


@dataclass(frozen=True)
class BundleMetadata:
    """The whole ``metadata.json``. ``class_names`` follow from ``task`` (one place for them)."""

    model: str
    mode: str
    task: Task
    input: InputSpec
    decision_threshold: float | None
    seed: int
    weights_sha256: str
    created: str
    versions: dict[str, str]
    training: TrainingRecord
    fit: FitSummary
    config: dict[str, Any]
    validation_metrics: dict[str, Any]
    pretrained: PretrainedWeights | None = None
    bundle_format: int = BUNDLE_FORMAT
    disclaimer: str = SCREENING_NOTICE
    calibration: Calibration | None = None
    exports: tuple[OnnxExport, ...] = ()
    # The knee ROI the model was trained on (None: whole letterboxed images). Every reader of
    # the bundle crops the same way; written only when set, so older bundles read unchanged.
    roi: RoiConfig | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.task.class_names

    @property
    def temperature(self) -> float:
        """Logits are divided by this before the softmax (1.0 until ``calibrate`` ran)."""
        return 1.0 if self.calibration is None else self.calibration.temperature

    @property
    def operating_threshold(self) -> float | None:
        """The decision threshold predict uses: the calibrated one when there is one."""
        if self.calibration is not None and self.calibration.threshold is not None:
            return self.calibration.threshold
        return self.decision_threshold

    def export(self, precision: str) -> OnnxExport | None:
        """The ONNX export of ``precision`` ('fp32' or 'int8'), or None if there is none."""
        return next((e for e in self.exports if e.precision == precision), None)

    @property
    def positive_class(self) -> str | None:
        return self.task.positive_class

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (non-finite floats become null)."""
        out: dict[str, Any] = {"bundle_format": self.bundle_format}
        for f in fields(self):
            if f.name == "bundle_format" or (f.name == "roi" and self.roi is None):
                continue
            value = getattr(self, f.name)
            if f.name in ("task", "roi"):
                value = value.to_dict()
            elif f.name == "exports":
                value = [asdict(e) for e in value]
            elif hasattr(value, "__dataclass_fields__"):
                value = _plain(value)
            out[f.name] = value
        out["class_names"] = list(self.class_names)
        out["positive_class"] = self.positive_class
        return json_ready(out)

    @classmethod
    def from_dict(cls, data: Any, where: Path | str) -> BundleMetadata:
        """Validate ``data`` (parsed ``metadata.json`` at ``where``) against the schema."""
        return _Reader(data, where).metadata()


def _plain(value: Any) -> Any:
    """Dataclasses (nested, and inside tuples) as plain dicts and lists."""
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Reader:
    """Validates one parsed metadata document; every complaint names the file and the field."""

    def __init__(self, data: Any, where: Path | str) -> None:
        self.where = where
        if not isinstance(data, dict):
            self.fail("top level", "is not a JSON object")
        self.data = data

    def fail(self, key: str, problem: str):
        raise BadBundleError(
            f"{self.where}: field {key!r} {problem}; the bundle is damaged or was edited: "
            "restore it from a backup or re-train it"
        )

    def get(self, key: str, kind: type | tuple[type, ...], source: dict | None = None) -> Any:
        source = self.data if source is None else source
        if key not in source:
            self.fail(key, "is missing")
        value = source[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            self.fail(key, f"must be {names}, not {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(key, "must be a finite number")
        return value

    def numbers(self, key: str, source: dict) -> tuple[float, ...]:
        values = self.get(key, list, source)
        if not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            self.fail(key, "must be a non-empty list of finite numbers")
        return tuple(float(v) for v in values)

    def metadata(self) -> BundleMetadata:
        fmt = self.get("bundle_format", int)
        if fmt > BUNDLE_FORMAT:
            raise BadBundleError(
                f"{self.where}: bundle format {fmt} was written by a newer osteoscan (this one "
                f"reads format {BUNDLE_FORMAT}); upgrade osteoscan to use it"
            )
        if fmt < BUNDLE_FORMAT:
            raise BadBundleError(
                f"{self.where}: bundle format {fmt} is older than this osteoscan reads "
                f"({BUNDLE_FORMAT}); re-train it with this version"
            )
        self.refuse_unknown_keys()  # after the version check: newer formats add keys
        task_data = self.get("task", dict)
        try:
            task = Task(self.get("name", str, task_data), self.get("osteopenia", str, task_data))
        except BadConfigError as exc:
            self.fail("task", f"is invalid ({exc})")
        class_names = self.get("class_names", list)
        if tuple(class_names) != task.class_names:
            self.fail("class_names", f"must be {list(task.class_names)} for the {task.name} task")
        return BundleMetadata(
            model=self.get("model", str),
            mode=self.get("mode", str),
            task=task,
            input=self.input_spec(),
            decision_threshold=self.threshold(task),
            seed=self.get("seed", int),
            weights_sha256=self.sha256("weights_sha256"),
            created=self.get("created", str),
            versions=self.get("versions", dict),
            training=self.training(),
            fit=self.fit(),
            config=self.get("config", dict),
            validation_metrics=self.get("validation_metrics", dict),
            pretrained=self.pretrained(),
            bundle_format=fmt,
            disclaimer=self.get("disclaimer", str),
            calibration=self.calibration(task),
            exports=self.exports(),
            roi=self.roi(),
        )

    def sha256(self, key: str, source: dict | None = None) -> str:
        value = self.get(key, str, source)
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            self.fail(key, "must be a 64-digit lower-case hex sha256")
        return value

    def input_spec(self) -> InputSpec:
        data = self.get("input", dict)
        size = self.get("image_size", int, data)
        if size < MIN_IMAGE_SIZE:
            self.fail("input.image_size", f"must be at least {MIN_IMAGE_SIZE}, not {size}")
        in_chans = self.get("in_chans", int, data)
        mean, std = self.numbers("mean", data), self.numbers("std", data)
        if len(mean) != in_chans or len(std) != in_chans:
            self.fail("input.mean/std", f"must have one value per input channel ({in_chans})")
        if any(s <= 0 for s in std):
            self.fail("input.std", "must be positive (a zero std divides by zero)")
        contract = self.get("contract_version", int, data)
        if contract != CONTRACT_VERSION:
            made_by = "a newer" if contract > CONTRACT_VERSION else "an older"
            advice = "upgrade osteoscan" if contract > CONTRACT_VERSION else "re-train it"
            raise BadBundleError(
                f"{self.where}: input contract {contract}: the model was trained on pixels "
                f"prepared the way {made_by} osteoscan prepares them (this one follows contract "
                f"{CONTRACT_VERSION}), so its predictions here would be wrong; {advice} to use it"
            )
        return InputSpec(
            size, in_chans, mean, std, contract, self.get("intensity_contract", str, data)
        )

    def threshold(self, task: Task) -> float | None:
        value = self.get("decision_threshold", (float, type(None)))
        if task.name == "binary":
            if value is None:
                self.fail("decision_threshold", "must be a number for the binary task")
            if not 0.0 <= value <= 1.0:
                self.fail("decision_threshold", f"must lie in [0, 1], not {value}")
        elif value is not None:
            self.fail("decision_threshold", "must be null for the three-class task")
        return value

    def training(self) -> TrainingRecord:
        data = self.get("training", dict)
        counts = {
            key: self.get(key, int, data)
            for key in (
                "n_train",
                "n_validation",
                "duplicate_groups",
                "conflicting_groups",
                "images_dropped_for_conflicts",
            )
        }
        return TrainingRecord(
            manifest_sha256=self.sha256("manifest_sha256", data),
            source=self.get("source", str, data),
            skipped_files=tuple(self.get("skipped_files", list, data)),
            images=tuple(self.seen_image(item) for item in self.get("images", list, data)),
            **counts,
        )

    def seen_image(self, item: Any) -> SeenImage:
        if not isinstance(item, dict):
            self.fail("training.images", "must hold objects with path, split and pixel_hash")
        split = self.get("split", str, item)
        if split not in SPLITS:
            self.fail("training.images.split", f"must be one of {list(SPLITS)}, not {split!r}")
        pixel_hash = self.get("pixel_hash", (str, type(None)), item)
        if pixel_hash is not None:
            pixel_hash = self.sha256("pixel_hash", item)
        return SeenImage(self.get("path", str, item), split, pixel_hash)

    def fit(self) -> FitSummary:
        data = self.get("fit", dict)
        return FitSummary(
            best_epoch=self.get("best_epoch", (int, type(None)), data),
            best_val_auc=self.get("best_val_auc", (float, type(None)), data),
            epochs_run=self.get("epochs_run", int, data),
            precision=self.get("precision", str, data),
        )

    def pretrained(self) -> PretrainedWeights | None:
        data = self.get("pretrained", (dict, type(None)))
        if data is None:
            return None
        return PretrainedWeights(
            self.get("path", str, data), self.sha256("sha256", data), self.get("origin", str, data)
        )

    def optional(self, key: str, kind: type, source: dict) -> Any:
        """``source[key]`` when present and not null (checked against ``kind``), else None."""
        if source.get(key) is None:
            return None
        return self.get(key, kind, source)

    def probability(self, key: str, source: dict, where: str) -> float | None:
        value = self.optional(key, float, source)
        if value is not None and not 0.0 <= value <= 1.0:
            self.fail(f"{where}.{key}", f"must lie in [0, 1], not {value}")
        return value

    def interval(self, key: str, source: dict, where: str) -> tuple[float, float] | None:
        if source.get(key) is None:
            return None
        values = self.numbers(key, source)
        if len(values) != 2 or values[0] > values[1]:
            self.fail(f"{where}.{key}", "must be [low, high] with low <= high")
        return values[0], values[1]

    def calibration(self, task: Task) -> Calibration | None:
        data = self.data.get("calibration")
        if data is None:
            return None
        if not isinstance(data, dict):
            self.fail("calibration", "must be an object or null")
        temperature = self.get("temperature", float, data)
        if temperature <= 0:
            self.fail("calibration.temperature", f"must be positive, not {temperature}")
        threshold = self.probability("threshold", data, "calibration")
        if task.name != "binary" and threshold is not None:
            self.fail("calibration.threshold", "must be null for the three-class task")
        n_images = self.get("n_images", int, data)
        if n_images < 1:
            self.fail("calibration.n_images", "must be at least 1")
        return Calibration(
            temperature=temperature,
            threshold=threshold,
            threshold_rule=self.get("threshold_rule", str, data),
            target_sensitivity=self.probability("target_sensitivity", data, "calibration"),
            sensitivity=self.probability("sensitivity", data, "calibration"),
            sensitivity_ci=self.interval("sensitivity_ci", data, "calibration"),
            specificity=self.probability("specificity", data, "calibration"),
            specificity_ci=self.interval("specificity_ci", data, "calibration"),
            threshold_ci=self.interval("threshold_ci", data, "calibration"),
            data_source=self.get("data_source", str, data),
            data_manifest_sha256=self.sha256("data_manifest_sha256", data),
            n_images=n_images,
            ece_before=self.get("ece_before", float, data),
            ece_after=self.get("ece_after", float, data),
            brier_before=self.get("brier_before", float, data),
            brier_after=self.get("brier_after", float, data),
            created=self.get("created", str, data),
        )

    def roi(self) -> RoiConfig | None:
        """The knee-ROI settings: fields of :class:`RoiConfig`, typed as its defaults (a setting
        missing, from a bundle written before it existed, takes its default)."""
        data = self.data.get("roi")
        if data is None:
            return None
        if not isinstance(data, dict):
            self.fail("roi", "must be an object of knee-ROI settings")
        defaults = RoiConfig()
        values: dict[str, Any] = {}
        for f in fields(RoiConfig):
            default = getattr(defaults, f.name)
            if f.name not in data:
                continue
            if isinstance(default, tuple):
                values[f.name] = self.numbers(f.name, data)
                if len(values[f.name]) != len(default):
                    self.fail(f"roi.{f.name}", f"must hold {len(default)} numbers")
            else:
                values[f.name] = self.get(f.name, type(default), data)
        unknown = sorted(set(data) - {f.name for f in fields(RoiConfig)})
        if unknown:
            self.fail(f"roi.{', '.join(unknown)}", "is not a knee-ROI setting")
        try:
            return RoiConfig(**values)
        except BadConfigError as exc:
            self.fail("roi", f"is invalid ({exc})")

    def exports(self) -> tuple[OnnxExport, ...]:
        items = self.data.get("exports", [])
        if not isinstance(items, list):
            self.fail("exports", "must be a list")
        out = []
        for item in items:
            if not isinstance(item, dict):
                self.fail("exports", "must hold objects")
            file = self.get("file", str, item)
            if Path(file).name != file or not file.endswith(".onnx"):
                self.fail(
                    "exports.file", f"must be a .onnx file name inside the bundle, not {file!r}"
                )
            precision = self.get("precision", str, item)
            if precision not in ONNX_PRECISIONS:
                self.fail(
                    "exports.precision", f"must be one of {ONNX_PRECISIONS}, not {precision!r}"
                )
            out.append(
                OnnxExport(
                    file=file,
                    sha256=self.sha256("sha256", item),
                    precision=precision,
                    opset=self.get("opset", int, item),
                    max_probability_difference=self.get("max_probability_difference", float, item),
                    tolerance=self.get("tolerance", float, item),
                    n_check_images=self.get("n_check_images", int, item),
                    calibration_images=tuple(self.get("calibration_images", list, item)),
                )
            )
        if len({e.precision for e in out}) != len(out):
            self.fail("exports", "lists one precision twice")
        return tuple(out)

    def refuse_unknown_keys(self) -> None:
        """Keys outside the schema are refused: a newer writer must raise ``bundle_format``."""
        known = {f.name for f in fields(BundleMetadata)} | {"class_names", "positive_class"}
        unknown = sorted(set(self.data) - known)
        if unknown:
            self.fail(", ".join(unknown), f"is not part of bundle format {BUNDLE_FORMAT}")
