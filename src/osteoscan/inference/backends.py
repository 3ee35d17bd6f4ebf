"""Inference backends: each maps normalised pixels (N, C, S, S) float32 to logits (N, K).

``TorchBackend`` runs the bundle's network (channels-last, inference mode);
``OnnxBackend`` runs an ONNX file with onnxruntime and never imports torch. Both take the
output of the one :class:`~osteoscan.inference.preprocess.Preprocessor`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from osteoscan.errors import BadBundleError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
DEFAULT_BACKEND = "auto"
INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"


class Backend(Protocol):
    name: str

    def logits(self, batch: np.ndarray) -> np.ndarray: ...


class TorchBackend:
    """The PyTorch network itself, tuned for CPU inference (channels-last, no autograd)."""

    name = "torch"

    def __init__(self, net, threads: int | None = None) -> None:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        self._torch = torch
        self.net = net.eval().to(memory_format=torch.channels_last)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            return self.net(x).float().numpy()


class OnnxBackend:
    """An ONNX model run by onnxruntime on the CPU.

    Its worker threads do not spin while waiting for work (onnxruntime's default is to spin):
    spinning threads take the cores that decode the next images, which costs more throughput
    than the faster wake-up gains (measured: README, "Inference speed"); ``spinning=True``
    restores onnxruntime's default.
    """

    def __init__(
        self,
        onnx_file: Path | str,
        threads: int | None = None,
        name: str = "onnx",
        spinning: bool = False,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BadBundleError(
                "the ONNX backend needs onnxruntime: pip install 'osteoscan[runtime]'"
            ) from None
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        for pool in ("intra_op", "inter_op"):
            options.add_session_config_entry(f"session.{pool}.allow_spinning", str(int(spinning)))
        try:
            self.session = ort.InferenceSession(
                str(onnx_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise BadBundleError(f"{onnx_file}: onnxruntime cannot load it ({exc})") from exc
        self.name = name

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
