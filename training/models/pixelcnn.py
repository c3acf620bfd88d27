"""Gated PixelCNN prior over a grid of discrete codes.

van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders": a vertical
stack sees every row above, a horizontal stack sees the pixels to the left in the current row,
so the receptive field has no blind spot. The first layer excludes the current position
(mask A); later layers may include it (mask B) because their inputs already exclude it.

With `moved_bias`, training may mix in the codes of randomly moved images (distribution
augmentation, Jun et al. 2020): each layer learns a bias that is added for those rows only, so
the net is told which distribution a row comes from, and sampling (no bias) keeps to the real one.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """A Conv2d whose kernel is multiplied by a fixed 0/1 mask."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: tuple[int, int], padding: tuple[int, int], mask: torch.Tensor
    ):
        super().__init__(in_channels, out_channels, kernel, padding=padding)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    def __init__(self, channels: int, kernel: int, first: bool, num_classes: int, dropout: float, moved_bias: bool):
        super().__init__()
        half = kernel // 2
        # Vertical kernel covers rows [i - half, i]; the first layer drops row i itself.
        vertical_mask = torch.ones(kernel // 2 + 1, kernel)
        horizontal_mask = torch.ones(1, kernel // 2 + 1)
        if first:
            vertical_mask[-1] = 0
            horizontal_mask[:, -1] = 0
        self.vertical = MaskedConv2d(channels, 2 * channels, (half + 1, kernel), (half, half), vertical_mask)
        self.horizontal = MaskedConv2d(channels, 2 * channels, (1, half + 1), (0, half), horizontal_mask)
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        self.class_bias = nn.Embedding(num_classes, 4 * channels) if num_classes else None
        self.moved_bias = nn.Parameter(torch.zeros(4 * channels)) if moved_bias else None
        self.dropout = nn.Dropout(dropout)
        self.residual = not first  # the first layer's input is the unmasked current code

    def row_bias(
        self, labels: torch.Tensor | None, moved: torch.Tensor | None, condition: torch.Tensor | None
    ) -> torch.Tensor | None:
        """(B, 4C): each row's class bias, its `condition` (a bias computed from a latent code) and, for moved rows,
        the moved bias; None when none applies."""
        biases = [] if condition is None else [condition]
        if self.class_bias is not None:
            biases.append(self.class_bias(labels))
        if moved is not None:
            biases.append(moved[:, None].to(self.moved_bias.dtype) * self.moved_bias)
        return sum(biases) if biases else None

    def forward(
        self,
        x_v: torch.Tensor,
        x_h: torch.Tensor,
        labels: torch.Tensor | None,
        moved: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        H, W = x_v.shape[-2:]
        v = self.vertical(x_v)[:, :, :H, :]  # (B, 2C, H, W), rows strictly above
        h = self.horizontal(x_h)[:, :, :, :W]  # (B, 2C, H, W), columns to the left
        h = h + self.vertical_to_horizontal(v)
        bias = self.row_bias(labels, moved, condition)
        if bias is not None:
            v_bias, h_bias = bias[:, :, None, None].chunk(2, dim=1)
            v, h = v + v_bias, h + h_bias
        out_v = gate(v)
        out_h = self.horizontal_out(self.dropout(gate(h)))
        if self.residual:
            out_h = out_h + x_h
        return out_v, out_h


@dataclass
class PixelCNNConfig:
    num_codes: int = 512  # K, the vocabulary
    grid_height: int = 7  # h of the code grid
    grid_width: int = 7  # w
    channels: int = 128
    layers: int = 12
    kernel: int = 5  # odd; each layer widens the view by kernel // 2 on every side
    head_hidden: int = 512
    num_classes: int = 0  # 0: unconditional; >0: class-conditional prior
    # > 0: while training, this share of labels becomes the extra class `num_classes`, "no label", so that the
    # prior also learns p(codes) unconditioned and a label is optional when sampling (classifier-free guidance's
    # label dropout, Ho & Salimans 2021)
    label_dropout: float = 0.0
    dropout: float = 0.1
    moved_bias: bool = False  # learn a per-layer bias for rows whose images were moved (train_prior --augment)

    @property
    def grid(self) -> tuple[int, int]:
        return self.grid_height, self.grid_width

    @property
    def no_label(self) -> int | None:
        """The label that stands for "no label", when the prior learnt one."""
        return self.num_classes if self.num_classes and self.label_dropout > 0 else None


class PriorOutput(NamedTuple):
    logits: torch.Tensor  # (B, K, h, w)
    loss: torch.Tensor  # mean NLL in nats per code


class PixelCNN(nn.Module):
    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        if config.layers < 2 or config.kernel < 3 or config.kernel % 2 == 0:
            raise ValueError("a gated PixelCNN needs layers >= 2 and an odd kernel >= 3")
        self.config = config
        self.embed = nn.Embedding(config.num_codes, config.channels)
        self.layers = nn.ModuleList(
            GatedLayer(
                config.channels,
                config.kernel,
                first=i == 0,
                num_classes=config.num_classes + (config.label_dropout > 0),
                dropout=config.dropout,
                moved_bias=config.moved_bias,
            )
            for i in range(config.layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(config.channels, config.head_hidden, 1),
            nn.ReLU(),
            nn.Conv2d(config.head_hidden, config.num_codes, 1),
        )

    def logits(
        self,
        codes: torch.Tensor,
        labels: torch.Tensor | None = None,
        moved: torch.Tensor | None = None,
        conditions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Codes (B, h, w) int64 -> logits (B, K, h, w) of each code given those before it; `moved` (B,) bool
        marks the rows that come from moved images (only while training with moved_bias); `conditions`
        (B, layers, 4C) are per-layer biases from a latent code (a VAE's autoregressive decoder)."""
        x = self.embed(codes).permute(0, 3, 1, 2)  # (B, C, h, w)
        x_v, x_h = x, x
        for i, layer in enumerate(self.layers):
            x_v, x_h = layer(x_v, x_h, labels, moved, None if conditions is None else conditions[:, i])
        return self.head(x_h)

    def forward(
        self, codes: torch.Tensor, labels: torch.Tensor | None = None, moved: torch.Tensor | None = None
    ) -> PriorOutput:
        logits = self.logits(codes, labels, moved)
        return PriorOutput(logits, F.cross_entropy(logits.float(), codes))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        conditions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Ancestral sampling in raster order: n code grids (n, h, w). Runs the net h*w times."""
        (h, w), device = self.config.grid, self.embed.weight.device
        codes = torch.zeros(n, h, w, dtype=torch.long, device=device)
        for i in range(h):
            for j in range(w):
                logits = self.logits(codes, labels, conditions=conditions)[:, :, i, j].float() / temperature
                probs = logits.softmax(dim=1).cpu()
                codes[:, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(device)
        return codes
