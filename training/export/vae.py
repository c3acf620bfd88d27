"""Export a trained VAE as a model package (`python -m training export --vae ...`).

encoder.onnx (image -> mean, logvar), decoder.onnx (z (+ labels) -> image), samples.png, and for a
2-D latent manifold.png; written and checked against torch by package.py's write_package.
"""

from pathlib import Path

import torch
from torch import nn

from contract.images import png_bytes, tile
from training.checkpoint import load_checkpoint, load_model
from training.export.package import (
    ExportOptions,
    GraphExample,
    provenance,
    read_evaluation,
    validation_images,
    write_package,
)
from training.models.vae import VAE


class VAEEncoderGraph(nn.Module):
    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(image)
        return posterior.mean, posterior.logvar


class VAEDecoderGraph(nn.Module):
    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.vae.decode(z, labels)


def vae_pictures(vae: VAE, images: torch.Tensor, labels: torch.Tensor, seed: int) -> dict[str, bytes]:
    """samples.png: two rows of validation images over their reconstructions (decoded posterior means), then
    four rows of draws from N(0, I); for a 2-D latent also manifold.png, the decoded grid of Gaussian quantiles."""
    n = vae.config.num_classes
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        reconstructions = vae.decode(vae.encode(images[:16]).mean, labels[:16] if n else None)
        z = torch.randn(32, vae.config.latent_dim, generator=generator)
        samples = vae.decode(z, torch.arange(32) % n if n else None)
    rows = [images[:8], reconstructions[:8], images[8:16], reconstructions[8:16], samples]
    pictures = {"samples.png": png_bytes(tile(torch.cat(rows).numpy(), 8))}
    if vae.config.latent_dim == 2:
        # Kingma & Welling's figure 4: a unit-square grid pushed through the Gaussian's inverse CDF.
        quantiles = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, 20))
        z = torch.stack(torch.meshgrid(quantiles, quantiles.flip(0), indexing="xy"), -1).reshape(-1, 2)
        with torch.no_grad():
            grid = vae.decode(z, torch.zeros(len(z), dtype=torch.long) if n else None)
        pictures["manifold.png"] = png_bytes(tile(grid.numpy(), 20, padding=0))
    return pictures


def export_vae(options: ExportOptions) -> Path:
    vae: VAE = load_model(options.vae, "vae")
    config = vae.config
    if vae.autoregressive:
        raise ValueError(
            f"{options.vae} has an autoregressive (pixelcnn) decoder, which draws an image pixel by pixel; the model "
            "package's decoder.onnx is one pass from z to the image, so only the one-pass VAEs export"
        )
    images, labels = validation_images(options, config.image_shape)
    with torch.no_grad():
        z = vae.encode(images).mean
    decoder_inputs = {"z": z} | ({"labels": labels.clamp(0, config.num_classes - 1)} if config.num_classes else {})
    graphs = {
        "encoder": GraphExample(VAEEncoderGraph(vae), {"image": images}, ["mean", "logvar"]),
        "decoder": GraphExample(VAEDecoderGraph(vae), decoder_inputs, ["image"]),
    }
    return write_package(
        options,
        graphs,
        vae_pictures(vae, images, labels, options.seed),
        read_evaluation(options.evaluation),
        kind="vae",
        image_shape=config.image_shape,
        latent_shape=[config.latent_dim],
        likelihood=config.likelihood,
        decoder_labels=config.num_classes,
        training=provenance({"vae": load_checkpoint(options.vae)}, options),
    )
