"""What a VQ-VAE keeps of its images: reconstruction error, codebook use, and the likelihood of the images
under its prior and a Gaussian decoder."""

import math

import torch
import torch.nn.functional as F

from training.data import ImageSet
from training.distributed import gather_rows
from training.metrics.vae import dequantize
from training.models.pixelcnn import PixelCNN
from training.models.vector_quantizer import code_statistics
from training.models.vq_vae import VQVAE


@torch.no_grad()
def encode_codes(model: VQVAE, images: ImageSet, device: torch.device, batch_size: int = 500) -> torch.Tensor:
    """All images of a split -> their code grids (N, h, w), on the CPU; under torchrun each rank encodes its share
    and the shares are gathered back in order."""
    model.eval()

    def encode(rows: slice) -> torch.Tensor:
        part = ImageSet(images.images[rows], images.labels[rows])
        return torch.cat([model.encode(batch.to(device)).codes for batch, _ in part.batches(batch_size)])

    return gather_rows(encode, len(images))


@torch.no_grad()
def reconstruction_metrics(
    model: VQVAE, images: ImageSet, device: torch.device, batch_size: int = 500
) -> dict[str, float]:
    """MSE and PSNR of clamped reconstructions (pixels in [0, 1]), codebook usage and perplexity."""
    model.eval()
    squared_error, all_codes = 0.0, []
    for batch, _ in images.batches(batch_size):
        batch = batch.to(device)
        _, codes = model.encode(batch)
        reconstruction = model.decode_codes(codes)
        squared_error += F.mse_loss(reconstruction, batch, reduction="sum").item()
        all_codes.append(codes.cpu())
    mse = squared_error / images.images.numel()
    stats = code_statistics(torch.cat(all_codes), model.config.num_codes)
    return {"mse": mse, "psnr": 10 * math.log10(1 / mse), "codebook_usage": stats.usage, "perplexity": stats.perplexity}


@torch.no_grad()
def prior_nll(prior: PixelCNN, codes: ImageSet, device: torch.device, batch_size: int = 500) -> dict[str, float]:
    """Mean negative log-likelihood of code grids in bits per code."""
    prior.eval()
    total = 0.0
    for batch, labels in codes.batches(batch_size):
        batch = batch.to(device)
        logits = prior.logits(batch, labels.to(device) if prior.config.num_classes else None)
        total += F.cross_entropy(logits.float(), batch, reduction="sum").item()
    return {"bits_per_code": total / codes.images.numel() / math.log(2)}


@torch.no_grad()
def gaussian_bits(vqvae: VQVAE, images: ImageSet, variance: float, device: torch.device) -> float:
    """Mean -log2 p(x | codes) per image for dequantized 8-bit pixels under N(decoded, variance), on the 0..255
    scale's bins: each pixel's bin of width 1/256 carries density x 1/256."""
    generator, total = torch.Generator().manual_seed(0), 0.0
    for batch, _ in images.batches(500):
        noisy = dequantize(batch, generator).to(device)
        mean = vqvae.decode_codes(vqvae.encode(batch.to(device)).codes)
        nats = 0.5 * (math.log(2 * math.pi * variance) + (noisy - mean) ** 2 / variance)
        total += nats.sum().item() / math.log(2) + batch[0].numel() * len(batch) * 8
    return total / len(images)
