"""VQ-VAE: a CNN encoder, a vector-quantized bottleneck and a CNN decoder.

van den Oord et al. 2017, "Neural Discrete Representation Learning". Each stride-2 stage
halves the image, so `downsamples` = 2 turns 28x28 MNIST into a 7x7 code grid, 28x20 Frey faces
into 7x5, 32x32 CIFAR-10 into 8x8.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from training.models.vector_quantizer import VectorQuantizer


class ResidualBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv1x1 added back to its input, as in the VQ-VAE paper."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


@dataclass
class VQVAEConfig:
    image_channels: int = 1
    image_height: int = 28
    image_width: int = 28
    hidden: int = 128  # channels at the code-grid resolution
    residual_hidden: int = 64
    residual_blocks: int = 2  # per resolution stage, in encoder and decoder each
    downsamples: int = 2  # the code grid is (H, W) / 2**downsamples
    num_codes: int = 512  # K
    code_dim: int = 64  # D
    beta: float = 0.25  # commitment weight
    ema_decay: float = 0.99
    restart_threshold: float = 1.0  # codes used less than this (EMA count per batch) restart
    rate_weight: float = 0.0  # entropy-constrained VQ: > 0 trades a little MSE for codes the prior predicts better

    def check_shape(self) -> None:
        step = 2**self.downsamples
        if self.image_height % step or self.image_width % step:
            raise ValueError(
                f"{self.downsamples} stride-2 stages need an image height and width divisible by {step}; got "
                f"{self.image_height}x{self.image_width} (resize with --image-size, or change --downsamples)"
            )

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the code grid."""
        return self.image_height // 2**self.downsamples, self.image_width // 2**self.downsamples


def stage_channels(config: VQVAEConfig) -> list[int]:
    """Channels from the finest stage (after the first stride) to the code grid."""
    return [config.hidden // 2 ** (config.downsamples - 1 - i) for i in range(config.downsamples)]


def residual_stack(channels: int, config: VQVAEConfig) -> list[nn.Module]:
    return [ResidualBlock(channels, config.residual_hidden) for _ in range(config.residual_blocks)]


class Encoder(nn.Module):
    def __init__(self, config: VQVAEConfig):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = config.image_channels
        for channels in stage_channels(config):
            layers += [nn.Conv2d(in_channels, channels, 4, stride=2, padding=1), nn.ReLU()]
            layers += residual_stack(channels, config)
            in_channels = channels
        layers += [nn.ReLU(), nn.Conv2d(in_channels, config.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)  # (B, C, H, W) -> (B, D, h, w)


class Decoder(nn.Module):
    def __init__(self, config: VQVAEConfig):
        super().__init__()
        channels = list(reversed(stage_channels(config)))
        layers: list[nn.Module] = [nn.Conv2d(config.code_dim, channels[0], 3, padding=1)]
        for i, stage in enumerate(channels):
            out = channels[i + 1] if i + 1 < len(channels) else config.image_channels
            layers += residual_stack(stage, config)
            layers += [nn.ReLU(), nn.ConvTranspose2d(stage, out, 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        # A linear output: a sigmoid trained with MSE saturates and stalls at black images.
        return self.net(z_q)  # (B, D, h, w) -> (B, C, H, W)


class VQEncoderOutput(NamedTuple):
    z_e: torch.Tensor  # (B, D, h, w), the encoder's continuous output
    codes: torch.Tensor  # (B, h, w), the nearest code of each vector


class VQVAEOutput(NamedTuple):
    reconstruction: torch.Tensor  # (B, C, H, W), unclamped while training
    codes: torch.Tensor  # (B, h, w)
    loss: torch.Tensor  # MSE plus commitment


class VQVAE(nn.Module):
    def __init__(self, config: VQVAEConfig):
        super().__init__()
        config.check_shape()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = VectorQuantizer(
            config.num_codes,
            config.code_dim,
            beta=config.beta,
            decay=config.ema_decay,
            restart_threshold=config.restart_threshold,
            rate_weight=config.rate_weight,
        )
        self.decoder = Decoder(config)

    def encode(self, image: torch.Tensor) -> VQEncoderOutput:
        """Image (B, C, H, W) in [0, 1] -> z_e (B, D, h, w), codes (B, h, w)."""
        z_e = self.encoder(image)
        B, D, h, w = z_e.shape
        codes = self.quantizer.nearest_codes(z_e.permute(0, 2, 3, 1).reshape(-1, D))
        return VQEncoderOutput(z_e, codes.view(B, h, w))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """z_q (B, D, h, w) -> image (B, C, H, W), clamped to [0, 1]."""
        return self.decoder(z_q).clamp(0, 1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantizer.lookup(codes))

    def forward(self, image: torch.Tensor) -> VQVAEOutput:
        z_e = self.encoder(image)  # (B, D, h, w)
        quantized = self.quantizer(z_e)
        reconstruction = self.decoder(quantized.z_q)  # (B, C, H, W), unclamped while training
        loss = F.mse_loss(reconstruction, image) + quantized.commit_loss
        return VQVAEOutput(reconstruction, quantized.codes, loss)
