"""Every knob of a training run, with defaults that suit a few hundred radiographs on a CPU."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from osteoscan.data.labels import Task
from osteoscan.data.transforms import AugmentConfig

DEFAULT_LR = {"finetune": 1e-4, "frozen": 1e-3, "scratch": 1e-3}


@dataclass(frozen=True)
class TrainConfig:
    """A training run. ``lr=None`` picks a per-mode default (fine-tuning needs a smaller one)."""

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

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.mode]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["task"] = self.task.to_dict()
        for key in ("weights_file", "cache_dir"):
            out[key] = None if out[key] is None else str(out[key])
        out["learning_rate"] = self.learning_rate
        return out
