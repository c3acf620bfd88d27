"""Train a VAE of the family (`python -m training vae ...`), watching for posterior collapse.

Binarized data is re-binarized every batch (dynamic binarization); grey levels are dequantized
every batch. Each epoch logs the validation ELBO, KL per dimension and the active units, and
warns in the log when the KL term has collapsed toward zero.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from contract.images import png_bytes, tile
from training.data import load_splits
from training.loop import fit
from training.metrics.vae import fixed_evaluation_set, prepare, vae_statistics
from training.models.vae import VAE, VAEConfig
from training.run import Run, RunOptions


def vae_loss(model: VAE, images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
    return model(prepare(model, images), labels if model.config.num_classes else None, step).loss


def save_samples(model: VAE, path: Path, n: int = 64, seed: int = 0) -> None:
    """Decoded draws from the prior N(0, I); a class-conditional model cycles through the classes."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    z = torch.randn(n, model.config.latent_dim, generator=generator).to(device)
    labels = torch.arange(n, device=device) % model.config.num_classes if model.config.num_classes else None
    with torch.no_grad():
        images = model.decode(z, labels).cpu().numpy()
    path.write_bytes(png_bytes(tile(images, 8)))


@dataclass
class VAEOptions:
    conditional: bool = False  # the decoder also takes the class label (for analogies)


def train_vae(options: RunOptions, vae_options: VAEOptions, config: VAEConfig) -> Path:
    """best.pt has the highest validation ELBO."""
    run = Run(options)
    splits = load_splits(options, options.seed)
    channels, height, width = splits.image_shape
    num_classes = splits.num_classes if vae_options.conditional else 0
    config = replace(config, image_channels=channels, image_height=height, image_width=width, num_classes=num_classes)
    model = VAE(config).to(run.device)
    val = fixed_evaluation_set(model, splits.val, seed=options.seed)

    def validate() -> dict[str, float]:
        statistics = vae_statistics(model, val, run.device)
        if warning := statistics.collapse_warning():
            print(f"WARNING: {warning}", flush=True)
        per_dimension = " ".join(f"{kl:.2f}" for kl in statistics.kl_per_dimension)
        print(f"KL per latent dimension (nats): {per_dimension}", flush=True)
        return statistics.as_metrics() | {"negative_elbo": -statistics.elbo, "collapsed": float(warning is not None)}

    best = fit(
        run,
        model,
        splits.train,
        vae_loss,
        validate,
        select="negative_elbo",
        kind="vae",
        data=splits.name,
        split=splits.split,
    )
    if run.world.main:
        save_samples(model, run.out / "samples.png", seed=options.seed)
    return best
