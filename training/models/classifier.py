"""A small CNN classifier, the judge of sample quality: the Inception Score and, in the penultimate layer's
features, the Fréchet distance and KID (metrics/distance.py) of samples against real images.

Conv layers (channels doubling), each followed by max-pooling, then dropout and two dense layers: two blocks give
>99% test accuracy on MNIST at a few million multiply-adds per image; CIFAR-10 takes three, wider.
"""

import itertools
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
    blocks: int = 2  # conv + max-pool blocks, channels doubling after the first


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor  # (B, classes)
    loss: torch.Tensor | None  # cross-entropy, when labels are given


class Classifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        widths = [config.image_channels] + [config.channels * 2**i for i in range(config.blocks)]
        layers = [
            layer
            for width_in, width_out in itertools.pairwise(widths)
            for layer in (nn.Conv2d(width_in, width_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        ]
        self.features = nn.Sequential(*layers, nn.Dropout(config.dropout), nn.Flatten())
        scale = 2**config.blocks
        flat = widths[-1] * (config.image_height // scale) * (config.image_width // scale)
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

    def penultimate(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> the activations that the last layer reads, (B, hidden)."""
        return self.head[:2](self.features(images))
