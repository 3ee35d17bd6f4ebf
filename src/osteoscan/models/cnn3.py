"""The study's small baseline: three conv blocks and a linear layer, trained from scratch."""

from __future__ import annotations

import torch
from torch import nn


class CNN3(nn.Module):
    """Three conv-BN-ReLU-maxpool blocks, global average pooling, and a linear classifier."""

    def __init__(self, in_chans: int = 1, num_classes: int = 2, width: int = 32) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = in_chans
        for out in (width, width * 2, width * 4):
            blocks += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
