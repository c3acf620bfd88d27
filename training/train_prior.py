"""Stage 2: train the PixelCNN prior on the code grids of the training set (`python -m training prior ...`).

As in the VQ-VAE paper, the dataset is encoded once with the frozen stage-1 model; the prior
then learns p(codes) (or p(codes | class)) by maximum likelihood.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from service.images import png_bytes, tile
from training.checkpoint import load_model
from training.data import ImageSet, load_dataset
from training.evaluate import encode_codes, prior_nll
from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.models.vq_vae import VQVAE
from training.run import Run, RunOptions
from training.train import fit


@dataclass
class PriorOptions:
    vqvae: str = "runs/vqvae/best.pt"  # the stage-1 checkpoint whose codes the prior models
    conditional: bool = False  # condition on the dataset's class labels


def prior_loss(prior: PixelCNN, codes: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
    return prior(codes, labels if prior.config.num_classes else None)[1]


def save_samples(vqvae: VQVAE, prior: PixelCNN, path: Path, n: int = 64, seed: int = 0) -> None:
    device = prior.embed.weight.device
    labels = torch.arange(n, device=device) % prior.config.num_classes if prior.config.num_classes else None
    codes = prior.sample(n, labels=labels, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images = vqvae.decode_codes(codes).cpu().numpy()
    path.write_bytes(png_bytes(tile(images, 8)))


def train_prior(options: RunOptions, prior_options: PriorOptions, config: PixelCNNConfig) -> Path:
    """Stage 2; best.pt has the lowest validation NLL in bits per code."""
    run = Run(options)
    vqvae = load_model(prior_options.vqvae, "vqvae", run.device)
    splits = load_dataset(options.data, vqvae.config.image_size, vqvae.config.image_channels, seed=options.seed)
    num_classes = splits.num_classes if prior_options.conditional else 0
    config = PixelCNNConfig(
        **{
            **asdict(config),
            "num_codes": vqvae.config.num_codes,
            "grid_size": vqvae.config.grid_size,
            "num_classes": num_classes,
        }
    )
    print(f"encoding {len(splits.train)} training and {len(splits.val)} validation images to codes")
    # Code grids ride in an ImageSet so that the same batching and training loop serve them.
    train_codes = ImageSet(encode_codes(vqvae, splits.train, run.device), splits.train.labels)
    val_codes = ImageSet(encode_codes(vqvae, splits.val, run.device), splits.val.labels)
    prior = PixelCNN(config).to(run.device)
    best = fit(
        run,
        prior,
        train_codes,
        prior_loss,
        lambda: prior_nll(prior, val_codes, run.device),
        "bits_per_code",
        "prior",
        vqvae=str(prior_options.vqvae),
        data=splits.name,
    )
    save_samples(vqvae, load_model(best, "prior", run.device), run.out / "samples.png", seed=options.seed)
    return best
