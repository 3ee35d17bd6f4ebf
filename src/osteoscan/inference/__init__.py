"""Screen new radiographs with a bundle: predict, calibrate, export (torch-free to import).

Only the torch backend, ``export`` and Grad-CAM (``osteoscan.explain``) need PyTorch; the ONNX
backend needs numpy, Pillow, pydicom and onnxruntime alone.
"""

from osteoscan.inference.backends import BACKENDS, OnnxBackend, TorchBackend
from osteoscan.inference.bundle_io import read_metadata, update_metadata
from osteoscan.inference.calibrate import calibrate
from osteoscan.inference.export import ExportConfig, export_bundle
from osteoscan.inference.predict import (
    PredictionRow,
    Predictor,
    expand_paths,
    open_predictor,
    predict,
    write_rows,
)
from osteoscan.inference.preprocess import Letterbox, PreparedImage, Preprocessor

__all__ = [
    "BACKENDS",
    "ExportConfig",
    "Letterbox",
    "OnnxBackend",
    "PredictionRow",
    "Predictor",
    "PreparedImage",
    "Preprocessor",
    "TorchBackend",
    "calibrate",
    "expand_paths",
    "export_bundle",
    "open_predictor",
    "predict",
    "read_metadata",
    "update_metadata",
    "write_rows",
]
