"""Small random affine moves of images: rotation, scaling, translation.

The PixelCNN prior overfits MNIST's 55,000 code grids (its training loss keeps falling while the
validation NLL rises), so it may also train on the codes of slightly moved digits, drawn afresh
for every batch: more distinct code grids of the same digits. Told which rows were moved
(PixelCNNConfig.moved_bias), it learns from them without sampling moved digits.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AffineJitter:
    share: float  # fraction of the images that are moved; the rest pass through unchanged
    degrees: float = 10.0  # rotation in [-degrees, degrees]
    scale: float = 0.1  # zoom factor in [1 - scale, 1 + scale]
    shift: float = 2.0  # translation in [-shift, shift] pixels along each axis

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1:
            raise ValueError(f"the share of moved images must lie in [0, 1], not {self.share}")


def uniform(n: int, bound: float, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, device=device) * 2 - 1) * bound


def jitter(images: torch.Tensor, settings: AffineJitter) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) -> (the batch with a random `share` of them moved (bilinear, zeros outside), which
    rows were moved (N,) bool)."""
    moved = torch.rand(len(images), device=images.device) < settings.share
    if not moved.any():
        return images, moved
    n, (height, width), device = int(moved.sum()), images.shape[-2:], images.device
    angle = uniform(n, math.radians(settings.degrees), device)
    zoom = 1 + uniform(n, settings.scale, device)
    # affine_grid maps output to input coordinates in [-1, 1]: the inverse of the move, hence / zoom and -shift.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    shift_x, shift_y = uniform(n, 2 * settings.shift / width, device), uniform(n, 2 * settings.shift / height, device)
    theta = torch.stack([torch.stack([cos, -sin, -shift_x], 1), torch.stack([sin, cos, -shift_y], 1)], 1)
    grid = F.affine_grid(theta, [n, *images.shape[1:]], align_corners=False)
    out = images.clone()
    out[moved] = F.grid_sample(images[moved], grid, align_corners=False, padding_mode="zeros")
    return out, moved


def mirror_half(images: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) with a random half of them mirrored left to right."""
    mirrored = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(mirrored[:, None, None, None], images.flip(-1), images)
