"""Every knob of a training run, with defaults that suit a few hundred radiographs on a CPU.

This module is torch-free, so the command line can take its defaults and choices from here without
importing torch. Options are checked when a config is made (:meth:`TrainConfig.__post_init__`);
what needs the model registry, the file system or the hardware is checked by
:meth:`TrainConfig.check_runtime`, which :func:`osteoscan.pipeline.train` calls before any work.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from osteoscan.data.augment import AugmentConfig
from osteoscan.data.labels import Task
from osteoscan.errors import BadConfigError
from osteoscan.roi.config import RoiConfig

DEFAULT_LR = {"finetune": 1e-4, "frozen": 1e-3, "scratch": 1e-3}  # one per registry mode
PRECISIONS = ("auto", "32", "bf16", "16")
# Lightning's accelerator names ("gpu" is its alias of "cuda"); tpu needs torch_xla, not installed.
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
# Lightning's registered strategy names, less those that need packages osteoscan does not install
# (deepspeed, torch_xla); tests/training/test_config.py checks them against Lightning's registry.
STRATEGIES = (
    "auto",
    "ddp",
    "ddp_find_unused_parameters_false",
    "ddp_find_unused_parameters_true",
    "ddp_fork",
    "ddp_fork_find_unused_parameters_false",
    "ddp_fork_find_unused_parameters_true",
    "ddp_notebook",
    "ddp_notebook_find_unused_parameters_false",
    "ddp_notebook_find_unused_parameters_true",
    "ddp_spawn",
    "ddp_spawn_find_unused_parameters_false",
    "ddp_spawn_find_unused_parameters_true",
    "fsdp",
    "fsdp_cpu_offload",
    "single_device",
)
MAX_SEED = 2**32 - 1  # numpy's seed range
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _flag(name: str) -> str:
    """The command-line flag of a field, for messages that serve Python and CLI users alike."""
    return {"weights_file": "--weights"}.get(name, "--" + name.replace("_", "-"))


def _refuse(name: str, value: object, what_to_do: str) -> BadConfigError:
    return BadConfigError(f"{name}={value!r} ({_flag(name)}): {what_to_do}")


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """A training run. ``lr=None`` picks a per-mode default (fine-tuning needs a smaller one).

    ``roi``: None trains on whole letterboxed images; a :class:`~osteoscan.roi.RoiConfig` reduces
    every image to one crop per knee first (both crops of a radiograph stay in one split) and
    travels in the bundle, so every later step crops the same way.

    Raises :class:`~osteoscan.errors.BadConfigError` for a value no run can use (``epochs=0``, a NaN
    learning rate, a flag the mode ignores), naming the field and its command-line flag.
    """

    model: str = "resnet18"
    mode: str = "finetune"
    task: Task = field(default_factory=Task)
    image_size: int = 224
    epochs: int = 30
    batch_size: int = 16
    lr: float | None = None
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    patience: int = 8
    val_fraction: float = 0.2
    seed: int = 0
    augment: bool = True
    augment_config: AugmentConfig = field(default_factory=AugmentConfig)
    frozen_views: int = 1
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    workers: int = 0
    channels_last: bool = True
    deterministic: bool = False
    threshold: float | str = 0.5
    keep_conflicts: bool = False
    strict: bool = False
    weights_file: Path | None = None
    weights_sha256: str | None = None
    cache_dir: Path | None = None
    progress: bool = True
    roi: RoiConfig | None = None

    def __post_init__(self) -> None:
        for name, minimum in (
            ("image_size", 1),
            ("epochs", 1),
            ("batch_size", 1),
            ("patience", 0),
            ("frozen_views", 1),
            ("num_nodes", 1),
            ("workers", 0),
        ):
            value = getattr(self, name)
            if not (_is_whole(value) and value >= minimum):
                raise _refuse(name, value, f"use a whole number >= {minimum}")
        if not (_is_whole(self.seed) and 0 <= self.seed <= MAX_SEED):
            raise _refuse("seed", self.seed, f"use a whole number from 0 to {MAX_SEED}")
        if self.lr is not None and not (
            _is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0
        ):
            raise _refuse("lr", self.lr, "use a finite learning rate > 0 (e.g. 1e-4)")
        for name in ("weight_decay", "warmup_epochs"):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise _refuse(name, value, "use a finite number >= 0")
        if not (_is_number(self.val_fraction) and 0.0 < self.val_fraction < 1.0):
            raise _refuse("val_fraction", self.val_fraction, "use a fraction between 0 and 1")
        if self.threshold != "youden" and not (
            _is_number(self.threshold) and 0.0 < self.threshold < 1.0
        ):
            raise _refuse("threshold", self.threshold, "use a number in (0, 1) or 'youden'")
        if self.devices != "auto" and not (_is_whole(self.devices) and self.devices >= 1):
            raise _refuse("devices", self.devices, "use a whole number of devices >= 1, or 'auto'")
        for name, choices in (
            ("mode", tuple(DEFAULT_LR)),
            ("precision", PRECISIONS),
            ("accelerator", ACCELERATORS),
            ("strategy", STRATEGIES),
        ):
            if getattr(self, name) not in choices:
                raise _refuse(name, getattr(self, name), f"use one of {', '.join(choices)}")
        if self.frozen_views != 1 and self.mode != "frozen":
            raise _refuse(
                "frozen_views",
                self.frozen_views,
                f"only frozen mode embeds extra views; drop it or use --mode frozen "
                f"(mode is {self.mode!r})",
            )
        if self.weights_file is not None and self.mode == "scratch":
            raise _refuse(
                "weights_file",
                str(self.weights_file),
                "scratch mode starts from random weights and would ignore the file; "
                "drop --weights or use --mode finetune or frozen",
            )
        if self.roi is not None and not isinstance(self.roi, RoiConfig):
            raise _refuse("roi", self.roi, "use None or an osteoscan.roi.RoiConfig")
        if self.weights_sha256 is not None:
            if self.weights_file is None:
                raise _refuse(
                    "weights_sha256", self.weights_sha256, "it checks a file given with --weights"
                )
            if not _SHA256.fullmatch(self.weights_sha256):
                raise _refuse("weights_sha256", self.weights_sha256, "use 64 hex digits")

    def check_runtime(self) -> None:
        """Checks that need the model registry, the file system or the hardware.

        The model and mode must be registered and fit together, the image must be at least the
        architecture's minimum size, and an explicitly requested
        GPU must exist. torch is imported only for an explicit ``gpu``/``cuda``/``mps``
        accelerator. Raises :class:`~osteoscan.errors.BadConfigError`.
        """
        from osteoscan.models.registry import get_spec

        spec = get_spec(self.model)
        if self.mode not in spec.modes:
            raise _refuse(
                "mode", self.mode, f"model {spec.name} can be trained in: {', '.join(spec.modes)}"
            )
        if self.image_size < spec.min_image_size:
            raise _refuse(
                "image_size",
                self.image_size,
                f"{spec.name} needs images of at least {spec.min_image_size} pixels",
            )
        if self.accelerator in ("gpu", "cuda", "mps"):
            self._check_accelerator()

    def _check_accelerator(self) -> None:
        import torch

        if self.accelerator == "mps":
            available = 1 if torch.backends.mps.is_available() else 0
        else:
            available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available == 0:
            raise _refuse(
                "accelerator",
                self.accelerator,
                "this machine has no such device; use --accelerator cpu or auto",
            )
        if _is_whole(self.devices) and self.devices > available:
            raise _refuse(
                "devices",
                self.devices,
                f"this machine has {available} {self.accelerator} device(s); use at most that",
            )

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.mode]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["task"] = self.task.to_dict()
        for key in ("weights_file", "cache_dir"):
            out[key] = None if out[key] is None else str(out[key])
        out["roi"] = None if self.roi is None else self.roi.to_dict()
        out["learning_rate"] = self.learning_rate
        return out
