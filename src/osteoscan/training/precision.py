"""Pick the fastest numerically safe precision for the hardware at hand.

CPU: bf16 autocast only where oneDNN has native bf16 (AMX or AVX-512 BF16); elsewhere it is
several times *slower* than fp32, so fp32 is kept. GPU: bf16 where supported, else fp16 AMP.
"""

from __future__ import annotations

import contextlib

import torch


def cpu_has_fast_bf16() -> bool:
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def uses_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str, accelerator: str) -> str:
    """Lightning precision string for ``auto``, ``32``, ``bf16`` or ``16``."""
    if precision == "32":
        return "32-true"
    if precision in ("bf16", "16"):
        return f"{precision}-mixed"
    if uses_gpu(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32-true"


def autocast_for(device: torch.device, precision: str):
    """The autocast context matching a resolved Lightning precision string, for inference code."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
