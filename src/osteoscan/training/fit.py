"""Fit a ClassifierNet on prepared pixels: end-to-end for finetune/scratch, on cached features
for frozen (the backbone sees each image view once, not once per epoch)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from osteoscan.data.transforms import Normalise, PixelDataset, train_transform
from osteoscan.models.build import ClassifierNet
from osteoscan.training.config import TrainConfig
from osteoscan.training.module import ClassifierModule, OptimConfig
from osteoscan.training.precision import autocast_for, resolve_precision, uses_gpu
from osteoscan.training.trainer import make_trainer, signals_as_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    best_val_auc: float
    epochs_run: int
    precision: str
    is_global_zero: bool


def class_weights(targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, normalised to mean 1, so the rarer class counts as much."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = counts.sum() / (num_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def fit_classifier(
    net: ClassifierNet,
    normalise: Normalise,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    config: TrainConfig,
    log_dir: Path,
) -> FitResult:
    """Train ``net`` in place; afterwards it holds the weights of the best validation epoch.

    Raises InterruptedRun on Ctrl-C or SIGTERM, BadConfigError when the loss becomes non-finite.
    """
    precision = resolve_precision(config.precision, config.accelerator)
    weights = class_weights(train[1], num_classes)
    optim = OptimConfig(
        config.learning_rate, config.weight_decay, config.warmup_epochs, config.channels_last
    )
    generator = torch.Generator().manual_seed(config.seed)
    if net.frozen:
        train_ds, val_ds = _feature_datasets(net, normalise, train, val, config, precision)
        module = ClassifierModule(net.head, weights, optim)
    else:
        transform = (
            train_transform(config.image_size, config.augment_config) if config.augment else None
        )
        if config.channels_last:
            net.to(memory_format=torch.channels_last)
        train_ds = PixelDataset(*train, transform=transform)
        val_ds = PixelDataset(*val)
        module = ClassifierModule(net, weights, optim, prepare=normalise)
    loader_args = {
        "batch_size": config.batch_size,
        "num_workers": config.workers,
        "persistent_workers": config.workers > 0,
    }
    train_loader = DataLoader(
        train_ds,
        shuffle=True,
        generator=generator,
        drop_last=len(train_ds) > config.batch_size,
        **loader_args,
    )
    val_loader = DataLoader(val_ds, shuffle=False, **loader_args)
    trainer, keep_best = make_trainer(config, log_dir, precision, config.epochs)
    with signals_as_errors():
        trainer.fit(module, train_loader, val_loader)
    if keep_best.best_state is not None:
        module.net.load_state_dict(keep_best.best_state)
    net.to(memory_format=torch.contiguous_format).cpu().eval()
    return FitResult(
        keep_best.best_epoch,
        keep_best.best_score,
        trainer.current_epoch,
        precision,
        trainer.is_global_zero,
    )


def _feature_datasets(
    net: ClassifierNet,
    normalise: Normalise,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    precision: str,
) -> tuple[TensorDataset, TensorDataset]:
    views = max(1, config.frozen_views) if config.augment else 1
    transform = train_transform(config.image_size, config.augment_config) if views > 1 else None
    device = torch.device("cuda" if uses_gpu(config.accelerator) else "cpu")
    train_features = [embed(net.backbone, normalise, train[0], config, precision, device, None)]
    torch.manual_seed(config.seed)
    for _ in range(views - 1):
        train_features.append(
            embed(net.backbone, normalise, train[0], config, precision, device, transform)
        )
    targets = torch.as_tensor(np.tile(train[1], views), dtype=torch.long)
    val_features = embed(net.backbone, normalise, val[0], config, precision, device, None)
    log.info(
        "frozen backbone: %d train views and %d validation images embedded once",
        len(targets),
        len(val[1]),
    )
    return (
        TensorDataset(torch.cat(train_features), targets),
        TensorDataset(val_features, torch.as_tensor(val[1], dtype=torch.long)),
    )


@torch.inference_mode()
def embed(
    backbone: nn.Module,
    normalise: Normalise,
    pixels: np.ndarray,
    config: TrainConfig,
    precision: str,
    device: torch.device,
    transform: nn.Module | None,
) -> torch.Tensor:
    """Backbone features of every image (optionally augmented), in float32 on the CPU."""
    backbone.eval().to(device)
    normalise = normalise.to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    backbone.to(memory_format=memory_format)
    dataset = PixelDataset(pixels, np.zeros(len(pixels), dtype=np.int64), transform)
    out = []
    for images, _ in DataLoader(dataset, batch_size=max(config.batch_size, 32)):
        images = normalise(images.to(device)).contiguous(memory_format=memory_format)
        with autocast_for(device, precision):
            out.append(backbone(images).float().cpu())
    backbone.to(memory_format=torch.contiguous_format).cpu()
    return torch.cat(out)
