"""Export a bundle's network to ONNX inside the bundle, checked before it is kept.

``model.onnx`` (fp32) maps normalised pixels (N, C, S, S) to logits, like the torch network, and
must agree with torch on real images within :data:`FP32_TOLERANCE` (largest absolute difference
of any class probability). ``model.int8.onnx`` is statically quantised (QDQ, per-channel
weights, MinMax calibration on images the user names) and is kept only if it agrees with the
fp32 model within :data:`INT8_TOLERANCE`; otherwise it is refused with the figure that failed.
Each kept file is listed in ``metadata.json`` with its sha256.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from osteoscan.errors import BadConfigError, ExportRefusedError, OsteoscanError
from osteoscan.files import atomic_path, sha256_file
from osteoscan.inference.backends import INPUT_NAME, OUTPUT_NAME, OnnxBackend, TorchBackend
from osteoscan.inference.bundle_io import load_torch_net, update_metadata
from osteoscan.inference.predict import expand_paths
from osteoscan.inference.preprocess import Preprocessor
from osteoscan.metadata import InputSpec, OnnxExport
from osteoscan.stats import softmax

log = logging.getLogger(__name__)

FORMATS = ("onnx",)
OPSET = 18
FP32_TOLERANCE = 1e-4
INT8_TOLERANCE = 0.02
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
MAX_CALIBRATION_IMAGES = 64
_BATCH = 8


@dataclass(frozen=True)
class ExportConfig:
    """What ``osteoscan export`` does; the CLI takes its defaults from here."""

    format: str = "onnx"
    int8: bool = False
    fp32_tolerance: float = FP32_TOLERANCE
    int8_tolerance: float = INT8_TOLERANCE
    max_calibration_images: int = MAX_CALIBRATION_IMAGES


def export_net_onnx(net, spec: InputSpec, out: Path) -> Path:
    """Write ``net`` as ONNX (opset :data:`OPSET`, dynamic batch) to ``out`` atomically."""
    import torch

    example = torch.zeros(2, spec.in_chans, spec.image_size, spec.image_size)
    batch = torch.export.Dim("batch", min=1)
    with atomic_path(out) as tmp:
        program = torch.onnx.export(
            net.eval(),
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        program.save(str(tmp), external_data=False)
    return out


class _CalibrationReader:
    """Feeds onnxruntime's static quantiser the user's images, a few at a time."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(fp32_file: Path, out: Path, calibration: np.ndarray) -> Path:
    """Static QDQ int8 (uint8 activations, per-channel int8 weights) calibrated on
    ``calibration`` (N, C, S, S) normalised pixels; written to ``out`` atomically.

    onnxruntime fuses the QDQ graph into the same kernels as the QOperator format would
    (QLinearConv with the ReLU folded in, QLinearAdd, NHWC layout), so the two run equally fast;
    per-tensor weights were no faster either. ``reduce_range`` (7-bit weights) keeps the model
    accurate on CPUs without VNNI as well, at no measured cost in speed on one with it.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [calibration[i : i + _BATCH] for i in range(0, len(calibration), _BATCH)]
    with tempfile.TemporaryDirectory(dir=out.parent) as work, atomic_path(out) as tmp:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32_file), str(prepared))
        quantize_static(
            str(prepared),
            str(tmp),
            _CalibrationReader(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    return out


def _normalised(preprocessor: Preprocessor, paths: Sequence[Path]) -> tuple[np.ndarray, list[Path]]:
    """Network input of every readable path, and the path of each input; unreadable ones are
    logged."""
    squares, readable = [], []
    for path in paths:
        try:
            inputs = preprocessor.load(path).inputs  # one per knee crop for a knee-ROI bundle
            squares += inputs
            readable += [path] * len(inputs)
        except OsteoscanError as exc:
            log.warning("skipping an image for the export check: %s", exc)
    if not squares:
        raise BadConfigError("none of the --images could be read; name readable radiographs")
    return preprocessor.normalise(squares), readable


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(softmax(a) - softmax(b)).max())


def export_bundle(
    bundle_dir: Path | str, images: Sequence[Path | str], config: ExportConfig = ExportConfig()
) -> tuple[OnnxExport, ...]:
    """Export the bundle to ONNX (and int8 when ``config.int8``), checked on ``images``
    (files or folders of real radiographs; also the int8 calibration set). Returns the
    bundle's exports after the run."""
    if config.format not in FORMATS:
        raise BadConfigError(f"unknown export format {config.format!r}; use {', '.join(FORMATS)}")
    bundle_dir = Path(bundle_dir)
    paths = expand_paths(images)
    if not paths:
        raise BadConfigError(
            "export needs real radiographs to check against: pass --images FILE_OR_FOLDER"
        )
    net, meta = load_torch_net(bundle_dir)
    pixels, paths = _normalised(Preprocessor(meta.input, roi=meta.roi), paths)
    n_images = len(paths)
    reference = TorchBackend(net).logits(pixels)

    fp32_file = export_net_onnx(net, meta.input, bundle_dir / FP32_FILE)
    fp32_logits = OnnxBackend(fp32_file).logits(pixels)
    fp32_diff = _max_difference(fp32_logits, reference)
    if fp32_diff > config.fp32_tolerance:
        fp32_file.unlink()
        raise ExportRefusedError(
            f"{bundle_dir}: ONNX fp32 probabilities differ from torch by {fp32_diff:.2e} "
            f"(tolerance {config.fp32_tolerance:.0e}) on {n_images} images; ONNX file not kept"
        )
    fp32 = OnnxExport(
        FP32_FILE, sha256_file(fp32_file), "fp32", OPSET, fp32_diff, config.fp32_tolerance, n_images
    )
    log.info("ONNX fp32 agrees with torch within %.2e on %d images", fp32_diff, n_images)
    earlier_int8 = tuple(e for e in meta.exports if e.precision == "int8")
    exports = update_metadata(bundle_dir, exports=(fp32, *earlier_int8)).exports
    if config.int8:
        int8 = _export_int8(bundle_dir, fp32_file, pixels, paths, fp32_logits, config)
        exports = update_metadata(bundle_dir, exports=(fp32, int8)).exports
    return exports


def _export_int8(
    bundle_dir: Path,
    fp32_file: Path,
    pixels: np.ndarray,
    paths: Sequence[Path],
    fp32_logits: np.ndarray,
    config: ExportConfig,
) -> OnnxExport:
    n_calibration = min(len(pixels), config.max_calibration_images)
    candidate = bundle_dir / f".{INT8_FILE}.candidate"
    try:
        quantize_int8(fp32_file, candidate, pixels[:n_calibration])
        int8_diff = _max_difference(OnnxBackend(candidate).logits(pixels), fp32_logits)
        if int8_diff > config.int8_tolerance:
            raise ExportRefusedError(
                f"{bundle_dir}: int8 refused: its probabilities differ from fp32 by up to "
                f"{int8_diff:.4f} (tolerance {config.int8_tolerance}) on {len(pixels)} images; "
                "the fp32 ONNX model was kept; try more or more typical --images"
            )
        target = bundle_dir / INT8_FILE
        candidate.replace(target)
    finally:
        candidate.unlink(missing_ok=True)
    log.info("ONNX int8 agrees with fp32 within %.3f on %d images", int8_diff, len(pixels))
    return OnnxExport(
        INT8_FILE,
        sha256_file(target),
        "int8",
        OPSET,
        int8_diff,
        config.int8_tolerance,
        len(pixels),
        tuple(str(p) for p in paths[:n_calibration]),
    )
