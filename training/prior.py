"""Stage 2: train the PixelCNN prior on the code grids of the training set (`python -m training prior ...`).

As in the VQ-VAE paper, the dataset is encoded once with the frozen stage-1 model; the prior
then learns p(codes) (or p(codes | class)) by maximum likelihood. With `--augment S`, a share S
of each batch's images is moved a little (augment.py) and the batch is encoded on the fly instead;
the prior learns a bias for the moved rows (PixelCNNConfig.moved_bias) that sampling leaves out.
With `--guide PRIOR`, the codes trained on are chosen for distortion plus that prior's rate (guided_codes.py).
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from contract.images import png_bytes, tile
from training.augment import AffineJitter, jitter
from training.checkpoint import load_model
from training.data import ImageSet, image_shape, load_splits
from training.guided_codes import guided_codes
from training.loop import LossFn, fit
from training.metrics.reconstruction import encode_codes, prior_nll
from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.models.vq_vae import VQVAE
from training.run import Run, RunOptions


@dataclass
class PriorOptions:
    vqvae: str = "runs/vqvae/best.pt"  # the stage-1 checkpoint whose codes the prior models
    conditional: bool = False  # condition on the dataset's class labels
    label_dropout: float = 0.0  # with --conditional: the share of labels hidden while training (labels optional)
    augment: float = 0.0  # share of training images randomly rotated, zoomed and shifted before encoding, per batch
    guide: str = ""  # a prior (checkpoint or package) whose rate chooses the codes trained on (guided_codes.py)
    guide_weight: float = 0.1  # squared distance one bit of the guide's rate is worth


def prior_loss(
    prior: PixelCNN, codes: torch.Tensor, labels: torch.Tensor, step: int, moved: torch.Tensor | None = None
) -> torch.Tensor:
    config = prior.config
    if not config.num_classes:
        return prior(codes, None, moved).loss
    if config.no_label is not None and prior.training:
        dropped = torch.rand(labels.shape, device=labels.device) < config.label_dropout
        labels = torch.where(dropped, torch.full_like(labels, config.no_label), labels)
    return prior(codes, labels, moved).loss


def jittered_prior_loss(vqvae: VQVAE, settings: AffineJitter) -> LossFn:
    """The prior's loss on the codes of a batch of images, a share of them moved first."""

    def loss(prior: PixelCNN, images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
        # Full precision, so that the codes are those encode_codes gives (bfloat16 could flip a nearest code).
        with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
            images, moved = jitter(images, settings)
            codes = vqvae.encode(images).codes
        return prior_loss(prior, codes, labels, step, moved)

    return loss


def save_samples(vqvae: VQVAE, prior: PixelCNN, path: Path, n: int = 64, seed: int = 0) -> None:
    device = prior.embed.weight.device
    labels = torch.arange(n, device=device) % prior.config.num_classes if prior.config.num_classes else None
    codes = prior.sample(n, labels=labels, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images = vqvae.decode_codes(codes).cpu().numpy()
    path.write_bytes(png_bytes(tile(images, 8)))


def split_codes(vqvae: VQVAE, prior_options: PriorOptions, device: torch.device) -> Callable[[ImageSet], ImageSet]:
    """A split's images -> its code grids, the encoder's or the guide's (guided_codes.py). Code grids ride in an
    ImageSet so that the same batching and training loop serve them."""
    if not prior_options.guide:
        return lambda split: ImageSet(encode_codes(vqvae, split, device), split.labels)
    guide = load_model(prior_options.guide, "prior", device)
    return lambda split: ImageSet(guided_codes(vqvae, guide, split, prior_options.guide_weight, device), split.labels)


def train_prior(options: RunOptions, prior_options: PriorOptions, config: PixelCNNConfig) -> Path:
    """Stage 2; best.pt has the lowest validation NLL in bits per code."""
    if prior_options.guide and prior_options.augment:
        raise ValueError("--guide chooses the codes of a fixed training set; --augment encodes new images every batch")
    run = Run(options)
    vqvae = load_model(prior_options.vqvae, "vqvae", run.device)
    splits = load_splits(options, options.seed, image_shape(vqvae.config))
    num_classes = splits.num_classes if prior_options.conditional else 0
    config = PixelCNNConfig(
        **{
            **asdict(config),
            "num_codes": vqvae.config.num_codes,
            "grid_height": vqvae.config.grid[0],
            "grid_width": vqvae.config.grid[1],
            "num_classes": num_classes,
            "label_dropout": prior_options.label_dropout if num_classes else 0.0,
            "moved_bias": prior_options.augment > 0,
        }
    )
    codes_of = split_codes(vqvae, prior_options, run.device)
    if prior_options.augment:
        train_set, loss = splits.train, jittered_prior_loss(vqvae, AffineJitter(prior_options.augment))
    else:
        print(f"encoding {len(splits.train)} training images to codes")
        train_set, loss = codes_of(splits.train), prior_loss
    val_codes = codes_of(splits.val)
    prior = PixelCNN(config).to(run.device)
    best = fit(
        run,
        prior,
        train_set,
        loss,
        lambda: prior_nll(prior, val_codes, run.device),
        select="bits_per_code",
        kind="prior",
        **asdict(prior_options),
        data=splits.name,
        split=splits.split,
    )
    if run.world.main:
        save_samples(vqvae, load_model(best, "prior", run.device), run.out / "samples.png", seed=options.seed)
    return best
