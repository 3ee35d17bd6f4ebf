"""Tensors for the network: train-only augmentation and the normalisation every model input gets.

Augmentation acts on the cached letterboxed image (1 x S x S, [0, 1]): small rotations,
zoom/crop, brightness/contrast. No flips by default: left/right knees differ anatomically and
side markers would be mirrored; ``hflip=True`` enables them deliberately.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.transforms import v2

from osteoscan.data.augment import AugmentConfig


def train_transform(size: int, config: AugmentConfig | None = None) -> v2.Compose:
    config = config or AugmentConfig()
    steps: list[nn.Module] = [
        v2.RandomResizedCrop(size, scale=config.zoom_scale, ratio=(0.9, 1.1), antialias=True),
        v2.RandomRotation(config.rotation_degrees),
        v2.ColorJitter(brightness=config.brightness, contrast=config.contrast),
    ]
    if config.hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


class Normalise(nn.Module):
    """Map a 1-channel [0, 1] batch to a model's input: replicate channels, subtract mean, / std."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.mean.shape[1]
        if x.shape[1] != channels:
            x = x.expand(-1, channels, -1, -1)
        return (x - self.mean) / self.std


class PixelDataset(Dataset):
    """Prepared float16 pixels (N, S, S) and class indices; augments on the fly if given a transform."""

    def __init__(
        self, pixels: np.ndarray, targets: Sequence[int], transform: nn.Module | None = None
    ) -> None:
        self.pixels = torch.from_numpy(np.ascontiguousarray(pixels))
        self.targets = torch.as_tensor(list(targets), dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.pixels[index].unsqueeze(0).float()
        if self.transform is not None:
            image = self.transform(image).clamp_(0.0, 1.0)
        return image, self.targets[index]
