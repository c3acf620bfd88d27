"""A small CNN digit classifier, the judge of sample quality (Inception Score on MNIST).

Two conv layers, each followed by max-pooling, then dropout and two dense layers: >99% test
accuracy on MNIST at a few million multiply-adds per image.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ClassifierConfig:
    image_channels: int = 1
    image_height: int = 28
    image_width: int = 28
    num_classes: int = 10
    channels: int = 32
    hidden: int = 128
    dropout: float = 0.25


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor  # (B, classes)
    loss: torch.Tensor | None  # cross-entropy, when labels are given


class Classifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(config.image_channels, c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(config.dropout),
            nn.Flatten(),
        )
        flat = 2 * c * (config.image_height // 4) * (config.image_width // 4)
        self.head = nn.Sequential(
            nn.Linear(flat, config.hidden),
            nn.ReLU(),
            nn.Dropout(2 * config.dropout),
            nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> ClassifierOutput:
        """Images (B, C, H, W) in [0, 1] -> logits, and the cross-entropy when labels are given."""
        logits = self.head(self.features(images))
        return ClassifierOutput(logits, F.cross_entropy(logits.float(), labels) if labels is not None else None)
