"""The one place a Lightning Trainer is built: devices, DDP, precision, logging, early stopping."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

from osteoscan.training.config import TrainConfig


class KeepBest(Callback):
    """Keep the best state dict (by validation AUC) in memory: no checkpoint files to half-write."""

    def __init__(self, monitor: str = "val_auc") -> None:
        self.monitor = monitor
        self.best_score = float("-inf")
        self.best_epoch = -1
        self.best_state: dict | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None and float(score) > self.best_score:
            self.best_score = float(score)
            self.best_epoch = trainer.current_epoch
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in pl_module.net.state_dict().items()}
            )


def make_trainer(
    config: TrainConfig, log_dir: Path, precision: str, max_epochs: int
) -> tuple[L.Trainer, KeepBest]:
    keep_best = KeepBest()
    callbacks: list[Callback] = [
        keep_best,
        EarlyStopping(monitor="val_auc", mode="max", patience=config.patience, check_finite=False),
    ]
    if config.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=precision,
        logger=CSVLogger(str(log_dir), name="logs"),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=config.deterministic,
        log_every_n_steps=1,
        default_root_dir=str(log_dir),
    )
    return trainer, keep_best
