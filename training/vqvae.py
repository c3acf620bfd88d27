"""Stage 1: train the VQ-VAE autoencoder (`python -m training vqvae ...`)."""

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from contract.images import png_bytes, tile
from training.augment import AffineJitter, jitter, mirror_half
from training.data import Splits, load_splits
from training.loop import LossFn, fit
from training.metrics.reconstruction import reconstruction_metrics
from training.models.vq_vae import VQVAE, VQVAEConfig
from training.run import Run, RunOptions


def save_reconstructions(model: VQVAE, images: torch.Tensor, path: Path, device: torch.device) -> None:
    """Originals on odd rows, reconstructions below them."""
    with torch.no_grad():
        model.eval()
        reconstruction = model.decode_codes(model.encode(images.to(device)).codes).cpu()
    pairs = torch.stack([images, reconstruction], 1)  # (N, 2, C, H, W)
    columns = 16
    rows = [
        pairs[i : i + columns].transpose(0, 1).reshape(-1, *images.shape[1:]) for i in range(0, len(images), columns)
    ]
    path.write_bytes(png_bytes(tile(torch.cat(rows).numpy(), columns)))


@dataclass
class VQVAEOptions:
    # Small data (the Frey faces' 1,573 training frames) overfits: a share of each batch moved a little
    # (augment.py), and half of it mirrored, show the autoencoder more distinct images of the same kind.
    augment: float = 0.0  # share of each batch's images rotated, zoomed and shifted
    hflip: bool = False  # mirror half of each batch left to right


def vqvae_loss(model: VQVAE, images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
    return model(images).loss


def augmented_loss(options: VQVAEOptions) -> LossFn:
    settings = AffineJitter(options.augment)

    def loss(model: VQVAE, images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
        if options.hflip:
            images = mirror_half(images)
        if options.augment:
            images = jitter(images, settings)[0]
        return model(images).loss

    return loss


def train_vqvae(options: RunOptions, config: VQVAEConfig, vqvae_options: VQVAEOptions | None = None) -> Path:
    """Stage 1; best.pt has the lowest validation MSE."""
    vqvae_options = vqvae_options or VQVAEOptions()
    loss = augmented_loss(vqvae_options) if vqvae_options.augment or vqvae_options.hflip else vqvae_loss
    run = Run(options)
    splits: Splits = load_splits(options, options.seed)
    channels, height, width = splits.image_shape
    model = VQVAE(replace(config, image_channels=channels, image_height=height, image_width=width)).to(run.device)
    best = fit(
        run,
        model,
        splits.train,
        loss,
        lambda: reconstruction_metrics(model, splits.val, run.device),
        select="mse",
        kind="vqvae",
        data=splits.name,
        split=splits.split,
    )
    if run.world.main:
        save_reconstructions(model, splits.val.images[:64], run.out / "reconstructions.png", run.device)
    return best
