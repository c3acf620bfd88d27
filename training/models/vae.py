"""Variational autoencoders: Kingma & Welling 2014, "Auto-Encoding Variational Bayes", and its lineage.

One model; the variants of the literature are config fields, not copied files:
- architecture "mlp": Kingma & Welling's MLP (tanh hidden layer, Gaussian encoder with linear mean
  and log-variance heads); `hidden_layers=3` is Rezende et al. 2014's deeper MLP;
- "conv": a convolutional encoder and decoder; "resnet": residual ones, as in the ResNet VAE of
  Kingma et al. 2016 (without IAF); "transformer": patch embeddings and a small transformer each way;
  "pixelcnn": a conv encoder and an autoregressive gated PixelCNN decoder (PixelVAE, Gulrajani et al. 2017;
  Chen et al. 2017), strong enough to model the data without z: the setting of posterior collapse;
- likelihood "bernoulli" for binarized data, "gaussian" for grey levels (learned per-pixel scale);
- beta-VAE (Higgins et al. 2017): `beta`; KL warm-up (Sønderby et al. 2016): `kl_warmup_steps`;
  free bits (Kingma et al. 2016): `free_bits` nats per latent dimension;
- class-conditional decoder (Sohn et al. 2015): `num_classes` > 0, so one z can be drawn as every class.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.models.vq_vae import ResidualBlock

LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian:
    """q(z|x) = N(mean, diag(exp(logvar))), with diffusers' names: sample(), mode(), kl()."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean, self.logvar = mean, logvar.clamp(-30.0, 20.0)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + (0.5 * self.logvar).exp() * noise  # the reparameterisation trick

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per dimension, (B, Z), in closed form."""
        return 0.5 * (self.mean**2 + self.logvar.exp() - 1.0 - self.logvar)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) summed over dimensions; z may carry leading sample axes, (..., B, Z) -> (..., B)."""
        return -0.5 * (LOG_2PI + self.logvar + (z - self.mean) ** 2 / self.logvar.exp()).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (LOG_2PI + z**2).sum(-1)


@dataclass
class VAEConfig:
    image_channels: int = 1
    image_height: int = 28
    image_width: int = 28
    architecture: str = "mlp"  # mlp | conv | resnet | transformer | pixelcnn
    likelihood: str = "bernoulli"  # bernoulli (binarized pixels) | gaussian (grey levels)
    latent_dim: int = 20
    hidden: int = 500  # mlp: units per hidden layer
    hidden_layers: int = 1  # mlp: 1 is Kingma & Welling, 3 is Rezende et al.
    activation: str = "tanh"  # mlp: tanh (as in the paper) | relu
    channels: int = 64  # conv / resnet: channels after the first stride-2 stage (doubled after the second)
    residual_blocks: int = 2  # resnet: per stage, each way
    patch_size: int = 4  # transformer
    width: int = 128  # transformer: token width
    depth: int = 4  # transformer: layers each way
    heads: int = 4  # transformer
    pixelcnn_layers: int = 5  # pixelcnn: gated layers of the decoder
    pixelcnn_channels: int = 32  # pixelcnn: channels of the decoder
    num_classes: int = 0  # > 0: the decoder also takes a class label
    beta: float = 1.0  # weight of the KL term (beta-VAE)
    kl_warmup_steps: int = 0  # the KL weight ramps 0 -> beta over this many steps
    free_bits: float = 0.0  # nats per latent dimension below which KL is not penalised

    def check_shape(self) -> None:
        if self.architecture == "pixelcnn" and (self.likelihood != "bernoulli" or self.image_channels != 1):
            raise ValueError("the pixelcnn decoder models binarized grey images (likelihood bernoulli, 1 channel)")
        step = {"conv": 4, "resnet": 4, "transformer": self.patch_size, "pixelcnn": 4}.get(self.architecture, 1)
        if self.image_height % step or self.image_width % step:
            raise ValueError(
                f"the {self.architecture} VAE needs an image height and width divisible by {step}; got "
                f"{self.image_height}x{self.image_width} (resize with --image-size)"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.image_channels, self.image_height, self.image_width

    @property
    def pixels(self) -> int:
        return self.image_channels * self.image_height * self.image_width


def activation(name: str) -> nn.Module:
    return {"tanh": nn.Tanh(), "relu": nn.ReLU()}[name]


class MLPEncoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = c.pixels
        for _ in range(c.hidden_layers):
            layers += [nn.Linear(width, c.hidden), activation(c.activation)]
            width = c.hidden
        self.body, self.out_features = nn.Sequential(*layers), width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)  # (B, features)


class MLPDecoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width = c.latent_dim + c.num_classes
        for _ in range(c.hidden_layers):
            layers += [nn.Linear(width, c.hidden), activation(c.activation)]
            width = c.hidden
        layers.append(nn.Linear(width, c.pixels))
        self.body, self.shape = nn.Sequential(*layers), c.image_shape

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.body(inputs).view(-1, *self.shape)  # (B, C, H, W)


def conv_stage(in_channels: int, out_channels: int, blocks: int, up: bool) -> list[nn.Module]:
    """One resolution step of a conv / resnet encoder (stride-2 conv) or decoder (transposed conv)."""
    step = (
        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1) if up else nn.Conv2d(in_channels, out_channels, 4, 2, 1)
    )
    residual = [ResidualBlock(out_channels, out_channels // 2) for _ in range(blocks)]
    return [step, nn.ReLU(), *residual]


class ConvEncoder(nn.Module):
    """Two stride-2 stages (H -> H/4), each followed by `residual_blocks` residual blocks (resnet)."""

    def __init__(self, c: VAEConfig):
        super().__init__()
        blocks = c.residual_blocks if c.architecture == "resnet" else 0
        self.body = nn.Sequential(
            *conv_stage(c.image_channels, c.channels, blocks, up=False),
            *conv_stage(c.channels, 2 * c.channels, blocks, up=False),
            nn.Flatten(),
        )
        self.out_features = 2 * c.channels * (c.image_height // 4) * (c.image_width // 4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class ConvDecoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        blocks = c.residual_blocks if c.architecture == "resnet" else 0
        self.grid, self.channels = (c.image_height // 4, c.image_width // 4), 2 * c.channels
        self.project = nn.Linear(c.latent_dim + c.num_classes, self.channels * self.grid[0] * self.grid[1])
        self.body = nn.Sequential(
            nn.ReLU(),
            *conv_stage(self.channels, c.channels, blocks, up=True),
            nn.ConvTranspose2d(c.channels, c.image_channels, 4, 2, 1),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(inputs).view(-1, self.channels, *self.grid))


def patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, C*p*p)"""
    B, C, H, W = images.shape
    return images.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)


def unpatchify(tokens: torch.Tensor, c: VAEConfig) -> torch.Tensor:
    p = c.patch_size
    B = tokens.shape[0]
    grid = tokens.view(B, c.image_height // p, c.image_width // p, c.image_channels, p, p).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(B, *c.image_shape)


def transformer(c: VAEConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(c.width, c.heads, 4 * c.width, dropout=0.0, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, c.depth, enable_nested_tensor=False)


class TransformerEncoder(nn.Module):
    """Patch embeddings + positions -> transformer -> mean over tokens (ViT without a class token)."""

    def __init__(self, c: VAEConfig):
        super().__init__()
        tokens = (c.image_height // c.patch_size) * (c.image_width // c.patch_size)
        self.patch_size = c.patch_size
        self.embed = nn.Linear(c.image_channels * c.patch_size**2, c.width)
        self.position = nn.Parameter(torch.randn(1, tokens, c.width) * 0.02)
        self.body, self.norm, self.out_features = transformer(c), nn.LayerNorm(c.width), c.width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(patchify(images, self.patch_size)) + self.position  # (B, T, width)
        return self.norm(self.body(tokens)).mean(1)


class TransformerDecoder(nn.Module):
    """z -> one token per patch (a learned projection plus positions) -> transformer -> pixels."""

    def __init__(self, c: VAEConfig):
        super().__init__()
        self.config, tokens = c, (c.image_height // c.patch_size) * (c.image_width // c.patch_size)
        self.project = nn.Linear(c.latent_dim + c.num_classes, c.width)
        self.position = nn.Parameter(torch.randn(1, tokens, c.width) * 0.02)
        self.body, self.norm = transformer(c), nn.LayerNorm(c.width)
        self.pixels = nn.Linear(c.width, c.image_channels * c.patch_size**2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        tokens = self.project(inputs)[:, None] + self.position  # (B, T, width)
        return unpatchify(self.pixels(self.norm(self.body(tokens))), self.config)


class PixelCNNDecoder(nn.Module):
    """p(x|z) = prod_i p(x_i | x_<i, z): a gated PixelCNN over the binary pixels (a vocabulary of two), z (and the
    label) entering every gated layer as a bias, as in van den Oord et al. 2016's conditional PixelCNN."""

    def __init__(self, c: VAEConfig):
        super().__init__()
        self.pixels = PixelCNN(
            PixelCNNConfig(
                num_codes=2,
                grid_height=c.image_height,
                grid_width=c.image_width,
                channels=c.pixelcnn_channels,
                layers=c.pixelcnn_layers,
                head_hidden=4 * c.pixelcnn_channels,
                dropout=0.0,
            )
        )
        self.condition = nn.Linear(c.latent_dim + c.num_classes, c.pixelcnn_layers * 4 * c.pixelcnn_channels)
        self.shape = c.image_shape

    def conditions(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.condition(inputs).view(len(inputs), self.pixels.config.layers, -1)  # (N, layers, 4C)

    def log_likelihood(self, images: torch.Tensor, inputs: torch.Tensor, rows: int = 1000) -> torch.Tensor:
        """Binary images (B, 1, H, W) under each of `inputs` (S * B, Z (+ classes)), S samples per image: (S * B,).
        In slices of `rows`, since importance sampling asks for thousands of full-size passes at once."""
        pixels = images[:, 0].long().repeat(len(inputs) // len(images), 1, 1)  # (S * B, H, W)
        out = []
        for codes, chunk in zip(pixels.split(rows), inputs.split(rows), strict=True):
            logits = self.pixels.logits(codes, conditions=self.conditions(chunk))
            out.append(-F.cross_entropy(logits.float(), codes, reduction="none").flatten(1).sum(1))
        return torch.cat(out)

    def sample(self, inputs: torch.Tensor) -> torch.Tensor:
        """One draw of binary pixels per row of `inputs`, (N, 1, H, W); runs the net H x W times."""
        return self.pixels.sample(len(inputs), conditions=self.conditions(inputs)).to(inputs.dtype)[:, None]


ARCHITECTURES = {
    "mlp": (MLPEncoder, MLPDecoder),
    "conv": (ConvEncoder, ConvDecoder),
    "resnet": (ConvEncoder, ConvDecoder),
    "transformer": (TransformerEncoder, TransformerDecoder),
    "pixelcnn": (ConvEncoder, PixelCNNDecoder),
}


class VAEOutput(NamedTuple):
    kl: torch.Tensor  # (B, Z), KL(q || N(0, I)) per dimension
    loss: torch.Tensor  # the negative ELBO per image, with beta, warm-up and free bits


class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        if config.architecture not in ARCHITECTURES or config.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"unknown architecture {config.architecture!r} or likelihood {config.likelihood!r}")
        config.check_shape()
        self.config = config
        encoder, decoder = ARCHITECTURES[config.architecture]
        self.encoder, self.decoder = encoder(config), decoder(config)
        self.mean = nn.Linear(self.encoder.out_features, config.latent_dim)
        self.logvar = nn.Linear(self.encoder.out_features, config.latent_dim)
        # Gaussian likelihood: one learned log-scale per pixel, shared by all images.
        self.log_scale = nn.Parameter(torch.full(config.image_shape, -2.0))

    def encode(self, images: torch.Tensor) -> DiagonalGaussian:
        """Images (B, C, H, W) in [0, 1] -> q(z|x)."""
        features = self.encoder(images)
        return DiagonalGaussian(self.mean(features), self.logvar(features))

    @property
    def autoregressive(self) -> bool:
        return self.config.architecture == "pixelcnn"

    def decoder_inputs(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """z (..., Z) and its labels -> the decoder's input rows (N, Z (+ classes))."""
        lead = z.shape[:-1]
        inputs = z.reshape(-1, z.shape[-1])
        if self.config.num_classes:
            one_hot = F.one_hot(labels, self.config.num_classes).to(z.dtype)
            inputs = torch.cat([inputs, one_hot.expand(*lead, -1).reshape(-1, self.config.num_classes)], dim=1)
        return inputs

    def decoder_output(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Bernoulli logits or Gaussian means before the sigmoid, (..., C, H, W) for z (..., Z)."""
        return self.decoder(self.decoder_inputs(z, labels)).view(*z.shape[:-1], *self.log_scale.shape)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, Z) -> pixel means (Gaussian) or Bernoulli probabilities, in [0, 1]; the autoregressive decoder
        has no per-pixel means, so it returns one draw of binary pixels."""
        if self.autoregressive:
            return self.decoder.sample(self.decoder_inputs(z, labels)).view(*z.shape[:-1], *self.log_scale.shape)
        return torch.sigmoid(self.decoder_output(z, labels))

    def log_likelihood(self, images: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x|z) summed over pixels; z may carry leading sample axes, (..., B, Z) -> (..., B)."""
        if self.autoregressive:
            return self.decoder.log_likelihood(images, self.decoder_inputs(z, labels)).view(z.shape[:-1])
        output = self.decoder_output(z, labels)
        if self.config.likelihood == "bernoulli":
            per_pixel = -F.binary_cross_entropy_with_logits(output, images.expand_as(output), reduction="none")
        else:
            scale = self.log_scale.exp()
            per_pixel = -0.5 * (LOG_2PI + 2 * self.log_scale + ((images - torch.sigmoid(output)) / scale) ** 2)
        return per_pixel.flatten(-3).sum(-1)

    def kl_weight(self, step: int | None) -> float:
        if step is None or self.config.kl_warmup_steps <= 0:
            return self.config.beta
        return self.config.beta * min(1.0, step / self.config.kl_warmup_steps)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, step: int | None = None) -> VAEOutput:
        posterior = self.encode(images)
        z = posterior.sample()
        reconstruction = self.log_likelihood(images, z, labels)  # (B,)
        kl = posterior.kl()  # (B, Z)
        # Free bits: dimensions whose batch-mean KL is under the floor are not pushed further down.
        penalised = kl.mean(0).clamp(min=self.config.free_bits).sum() if self.config.free_bits > 0 else kl.sum(1).mean()
        loss = -reconstruction.mean() + self.kl_weight(step) * penalised
        return VAEOutput(kl, loss)
