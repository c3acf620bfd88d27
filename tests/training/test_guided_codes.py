"""Prior-guided codes: the greedy distortion + rate choice, made with the Fast PixelCNN steps."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.conftest import DATA, TINY_PRIOR, TinyPipeline, run_options
from training.checkpoint import load_checkpoint, load_model
from training.data import ImageSet, load_dataset
from training.guided_codes import guided_codes
from training.models.pixelcnn import PixelCNN
from training.models.vq_vae import VQVAE
from training.prior import PriorOptions, train_prior


def greedy_by_full_passes(vqvae: VQVAE, guide: PixelCNN, images: ImageSet, weight: float) -> torch.Tensor:
    """The definition, slowly: one full forward pass of the guide per position."""
    with torch.no_grad():
        z_e = vqvae.encoder(images.images).permute(0, 2, 3, 1)  # (N, h, w, D)
        distances = ((z_e.unsqueeze(3) - vqvae.quantizer.codebook) ** 2).sum(-1)  # (N, h, w, K)
        labels = images.labels if guide.config.num_classes else None
        codes = torch.zeros(distances.shape[:3], dtype=torch.long)
        for i in range(codes.shape[1]):
            for j in range(codes.shape[2]):
                bits = -guide.logits(codes, labels)[:, :, i, j].double().log_softmax(1) / torch.log(torch.tensor(2.0))
                codes[:, i, j] = (distances[:, i, j].double() + weight * bits).argmin(1)
    return codes


def validation(n: int = 24) -> ImageSet:
    val = load_dataset(DATA).val
    return ImageSet(val.images[:n], val.labels[:n])


@pytest.mark.parametrize("weight", [0.05, 5.0])
def test_guided_codes_are_the_greedy_distortion_plus_rate_choice(tiny_pipeline: TinyPipeline, weight: float) -> None:
    vqvae, guide = load_model(tiny_pipeline.vqvae, "vqvae"), load_model(tiny_pipeline.prior, "prior")  # conditional
    images = validation()
    codes = guided_codes(vqvae, guide, images, weight, torch.device("cpu"), batch_size=10)
    assert torch.equal(codes, greedy_by_full_passes(vqvae, guide, images, weight))
    if weight > 1:  # the rate dominates: the codes leave the encoder's nearest ones
        assert not torch.equal(codes, vqvae.encode(images.images).codes)


def test_without_weight_the_guided_codes_are_the_nearest(tiny_pipeline: TinyPipeline) -> None:
    vqvae, guide = load_model(tiny_pipeline.vqvae, "vqvae"), load_model(tiny_pipeline.prior, "prior")
    assert vqvae.config.rate_weight == 0
    images = validation()
    codes = guided_codes(vqvae, guide, images, 0.0, torch.device("cpu"))
    assert torch.equal(codes, vqvae.encode(images.images).codes)


def test_a_prior_trains_on_guided_codes(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    options = PriorOptions(vqvae=str(tiny_pipeline.vqvae), guide=str(tiny_pipeline.prior), guide_weight=0.5)
    best = train_prior(run_options(tmp_path / "prior", epochs=1), options, TINY_PRIOR)
    state = load_checkpoint(best)
    assert (state["guide"], state["guide_weight"]) == (str(tiny_pipeline.prior), 0.5)
    with pytest.raises(ValueError, match="--augment encodes new images"):
        train_prior(run_options(tmp_path / "both", epochs=1), replace(options, augment=0.5), TINY_PRIOR)
