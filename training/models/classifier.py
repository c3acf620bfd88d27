"""A small CNN digit classifier, the judge of sample quality (Inception Score on MNIST).

Two conv layers, each followed by max-pooling, then dropout and two dense layers: >99% test
accuracy on MNIST at a few million multiply-adds per image.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ClassifierConfig:
    image_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    channels: int = 32
    hidden: int = 128
    dropout: float = 0.25


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
        flat = 2 * c * (config.image_size // 4) ** 2
        self.head = nn.Sequential(
            nn.Linear(flat, config.hidden),
            nn.ReLU(),
            nn.Dropout(2 * config.dropout),
            nn.Linear(config.hidden, config.num_classes),
        )

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (B, C, H, W) in [0, 1] -> (logits (B, classes), cross-entropy or None)."""
        logits = self.head(self.features(images))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return logits, loss
