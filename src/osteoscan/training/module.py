"""The one LightningModule: cross-entropy with class weights, AdamW, warm-up + cosine schedule,
validation ROC AUC computed over the whole validation set (gathered across DDP ranks).

A run that diverges (a non-finite loss or validation probabilities) stops with
:class:`~osteoscan.errors.BadConfigError` instead of saving a network that outputs NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from osteoscan.errors import BadConfigError
from osteoscan.stats import macro_auc


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    channels_last: bool = True


class ClassifierModule(L.LightningModule):
    """Trains ``net`` (inputs -> logits); ``prepare`` maps a raw batch to the net's input."""

    def __init__(
        self,
        net: nn.Module,
        class_weights: torch.Tensor,
        optim: OptimConfig,
        prepare: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.prepare = prepare if prepare is not None else nn.Identity()
        self.register_buffer("class_weights", class_weights.float())
        self.optim = optim
        self._val_probs: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []
        self._nonfinite = torch.zeros((), dtype=torch.bool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare(x)
        if self.optim.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = F.cross_entropy(self(inputs).float(), targets, weight=self.class_weights)
        # a device-side flag, checked once per epoch: no host sync per step
        self._nonfinite = self._nonfinite.to(loss.device) | ~torch.isfinite(loss.detach())
        self.log(
            "train_loss",
            loss,
            prog_bar=True,
            on_epoch=True,
            on_step=False,
            batch_size=len(targets),
            sync_dist=True,
        )
        return loss

    def on_train_epoch_end(self) -> None:
        if bool(self._nonfinite):
            self._diverged("the training loss became non-finite")

    def _diverged(self, what: str) -> None:
        raise BadConfigError(
            f"training diverged in epoch {self.current_epoch + 1}: {what}; lower the learning "
            f"rate (--lr, now {self.optim.lr:g}) and train again"
        )

    def validation_step(self, batch, batch_idx: int) -> None:
        inputs, targets = batch
        logits = self(inputs).float()
        loss = F.cross_entropy(logits, targets, weight=self.class_weights)
        self.log("val_loss", loss, prog_bar=True, batch_size=len(targets), sync_dist=True)
        self._val_probs.append(logits.softmax(dim=1).detach())
        self._val_targets.append(targets.detach())

    def on_validation_epoch_end(self) -> None:
        probs = torch.cat(self._val_probs)
        targets = torch.cat(self._val_targets)
        self._val_probs.clear()
        self._val_targets.clear()
        if self.trainer.world_size > 1:
            probs = self.all_gather(probs).flatten(0, 1)
            targets = self.all_gather(targets).flatten(0, 1)
        probs_np, targets_np = probs.cpu().numpy(), targets.cpu().numpy()
        if not np.isfinite(probs_np).all():
            self._diverged("the validation probabilities became non-finite")
        auc = macro_auc(targets_np, probs_np)
        accuracy = float((probs_np.argmax(1) == targets_np).mean())
        self.log("val_auc", float(np.nan_to_num(auc, nan=0.5)), prog_bar=True, sync_dist=False)
        self.log("val_acc", accuracy, prog_bar=True, sync_dist=False)

    def configure_optimizers(self):
        params = [p for p in self.net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=self.optim.lr, weight_decay=self.optim.weight_decay
        )
        total = max(1, self.trainer.estimated_stepping_batches)
        steps_per_epoch = max(1, total // max(1, self.trainer.max_epochs))
        warmup = min(total - 1, max(1, round(self.optim.warmup_epochs * steps_per_epoch)))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
