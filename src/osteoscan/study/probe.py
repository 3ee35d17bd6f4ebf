"""A short timing probe: a few forward+backward batches per distinct model, to estimate unit
times. The fastest warm step counts, so a machine shared with other jobs skews the ratios between
models less than a single step would.

Estimates are upper bounds (early stopping may end a unit sooner) and are printed with the plan
and again, rescaled by the measured/estimated ratio so far, as units finish.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch

from osteoscan.data.transforms import Normalise
from osteoscan.models import build_for_inference, get_spec
from osteoscan.training.precision import autocast_for

log = logging.getLogger(__name__)

WARM_STEPS = 3


@dataclass(frozen=True)
class BatchTiming:
    forward_backward_s: float
    forward_s: float


def time_batch(
    model: str,
    mode: str,
    image_size: int,
    batch_size: int,
    precision: str = "32-true",
    device: str = "cpu",
) -> BatchTiming:
    """Seconds for one training step and one inference batch (the fastest of ``WARM_STEPS``
    after a warm-up), on the ``device`` and at the resolved Lightning ``precision`` the units
    will use."""
    spec = get_spec(model)
    device = torch.device(device)
    net = build_for_inference(model, mode, 2).to(device)
    normalise = Normalise(spec.mean, spec.std).to(device)
    images = torch.rand(batch_size, 1, image_size, image_size, device=device)
    targets = torch.zeros(batch_size, dtype=torch.long, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    timings = []
    for _ in range(1 + WARM_STEPS):
        start = time.perf_counter()
        if mode != "frozen":
            net.train()
            with autocast_for(device, precision):
                logits = net(normalise(images))
            torch.nn.functional.cross_entropy(logits.float(), targets).backward()
            net.zero_grad(set_to_none=True)
        sync()
        step = time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode(), autocast_for(device, precision):
            net.eval()(normalise(images))
        sync()
        timings.append((step, time.perf_counter() - start))
    warm = timings[1:]
    return BatchTiming(min(t[0] for t in warm), min(t[1] for t in warm))


def estimate_unit_s(
    timing: BatchTiming,
    mode: str,
    epochs: int,
    batch_size: int,
    n_fit: int,
    n_val: int,
    n_predict: int,
    frozen_views: int = 1,
) -> float:
    """Upper-bound seconds for one unit: training epochs, validation, then predicting."""

    def batches(n: int) -> int:
        return math.ceil(n / batch_size)

    predict = batches(n_predict) * timing.forward_s
    if mode == "frozen":  # the backbone embeds each view once; the head's epochs cost ~nothing
        return batches(n_fit * frozen_views + n_val) * timing.forward_s + predict
    epoch = batches(n_fit) * timing.forward_backward_s + batches(n_val) * timing.forward_s
    return epochs * epoch + predict
