"""Measuring a VAE the way the papers do.

- Test NLL by importance sampling with k samples per image (Burda et al. 2015, "Importance Weighted
  Autoencoders", eq. 8 with the trained q as proposal; k = 5000 as in their Table 1), beside the ELBO.
- Binarized MNIST is binarized dynamically while training and once, with a fixed seed, for evaluation.
- Grey levels: uniform dequantization, NLL reported in bits per dimension on the 0..255 scale.
- Posterior collapse: KL per latent dimension and active units, Cov_x(E_q[z_u | x]) > 0.01 (Burda et al.); the
  warning also catches near-collapse, a nat or two left in z while the decoder models the rest.
- Analogies of a class-conditional decoder: each image's posterior mean decoded as every class.
"""

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from tqdm import tqdm

from training.data import ImageSet
from training.models.vae import VAE, DiagonalGaussian, standard_normal_log_prob

ACTIVE_UNIT_THRESHOLD = 0.01
COLLAPSED_KL = 0.01  # nats: a dimension with less KL than this carries (almost) no information
COLLAPSE_WARNING_KL = 0.1  # nats per image: below this the whole posterior has collapsed
# Near-collapse, as an autoregressive decoder shows it: z keeps a nat or two in a few dimensions while the decoder
# models the rest. Below this much KL per data dimension, with most latent dimensions under INFORMATIVE_KL, the
# monitor warns. For scale (nats per pixel): the PixelCNN-decoder VAE without free bits 0.002; the bundled VAEs
# 0.008 (mnist-vae-2d) to 0.035 (mnist-vae).
NEAR_COLLAPSE_KL_PER_DATA_DIMENSION = 0.005
INFORMATIVE_KL = 0.1  # nats: a latent dimension under this carries next to nothing of the image


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each pixel becomes 1 with probability equal to its grey level."""
    return torch.bernoulli(images, generator=generator)


def dequantize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization of 8-bit pixels: (round(255 x) + u) / 256, u ~ U(0, 1)."""
    noise = torch.rand(images.shape, generator=generator)
    return (torch.round(images * 255) + noise.to(images.device)) / 256


def prepare(model: VAE, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The data the likelihood is defined on: binarized for Bernoulli, dequantized for Gaussian."""
    if model.config.likelihood == "bernoulli":
        return binarize(images, generator)
    return dequantize(images, generator)


def fixed_evaluation_set(model: VAE, split: ImageSet, seed: int = 0) -> ImageSet:
    """Binarized (or dequantized) once with a fixed seed, so every evaluation sees the same data."""
    return ImageSet(prepare(model, split.images, torch.Generator().manual_seed(seed)), split.labels)


class LatentModel(Protocol):
    def encode(self, images: torch.Tensor) -> DiagonalGaussian: ...

    def log_likelihood(self, images: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor: ...


@torch.no_grad()
def importance_sampled_log_likelihood(
    model: LatentModel,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    samples: int,
    chunk: int = 500,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log p(x) ~ log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x); (B,). Exact as k -> inf."""
    posterior = model.encode(images)
    log_weights = []
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        noise = torch.randn((k, *posterior.mean.shape), generator=generator).to(posterior.mean.device)
        z = posterior.mean + (0.5 * posterior.logvar).exp() * noise  # (k, B, Z)
        log_weights.append(
            model.log_likelihood(images, z, labels) + standard_normal_log_prob(z) - posterior.log_prob(z)
        )
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(samples)


@dataclass
class VAEStatistics:
    elbo: float  # nats per image
    reconstruction: float  # E_q log p(x|z), nats per image
    kl: float  # nats per image
    kl_per_dimension: list[float]
    activity_per_dimension: list[float]  # Cov_x E[z_u | x], which active units threshold
    active_units: int
    collapsed_dimensions: int
    data_dimensions: int  # pixels x channels, the scale the KL is judged on

    def as_metrics(self) -> dict[str, float]:
        return {
            "elbo": self.elbo,
            "reconstruction": self.reconstruction,
            "kl": self.kl,
            "active_units": float(self.active_units),
            "collapsed_dimensions": float(self.collapsed_dimensions),
        }

    def collapse_warning(self) -> str | None:
        uninformative = sum(kl < INFORMATIVE_KL for kl in self.kl_per_dimension)
        collapsed = self.kl < COLLAPSE_WARNING_KL or self.active_units == 0
        nearly_collapsed = (
            self.kl / self.data_dimensions < NEAR_COLLAPSE_KL_PER_DATA_DIMENSION
            and uninformative > len(self.kl_per_dimension) / 2
        )
        if collapsed or nearly_collapsed:
            return (
                f"posterior collapse: KL {self.kl:.3f} nats per image ({self.kl / self.data_dimensions:.4f} per data "
                f"dimension), {uninformative} of {len(self.kl_per_dimension)} latent dimensions under "
                f"{INFORMATIVE_KL} nats, {self.active_units} active units; "
                "the decoder is modelling the data (almost) without the latent code"
            )
        return None


@torch.no_grad()
def vae_statistics(model: VAE, data: ImageSet, device: torch.device, batch_size: int = 500) -> VAEStatistics:
    """ELBO terms, KL per dimension and active units on an already binarized/dequantized split."""
    model.eval()
    generator = torch.Generator().manual_seed(0)
    reconstruction, kl, means = 0.0, 0.0, []
    for images, labels in data.batches(batch_size):
        images, labels = images.to(device), labels.to(device) if model.config.num_classes else None
        posterior = model.encode(images)
        noise = torch.randn(posterior.mean.shape, generator=generator).to(device)
        z = posterior.mean + (0.5 * posterior.logvar).exp() * noise
        reconstruction += model.log_likelihood(images, z, labels).sum().item()
        kl = kl + posterior.kl().sum(0)
        means.append(posterior.mean.cpu())
    n = len(data)
    kl_per_dimension = (kl / n).cpu()
    activity = torch.cat(means).var(0)
    return VAEStatistics(
        elbo=(reconstruction - kl_per_dimension.sum().item() * n) / n,
        reconstruction=reconstruction / n,
        kl=kl_per_dimension.sum().item(),
        kl_per_dimension=kl_per_dimension.tolist(),
        activity_per_dimension=activity.tolist(),
        active_units=int((activity > ACTIVE_UNIT_THRESHOLD).sum()),
        collapsed_dimensions=int((kl_per_dimension < COLLAPSED_KL).sum()),
        data_dimensions=data.images[0].numel(),
    )


def importance_sampled_nll(
    model: VAE, data: ImageSet, device: torch.device, samples: int, batch_size: int = 100
) -> float:
    """Mean importance-sampled negative log-likelihood in nats per image."""
    model.eval()
    generator = torch.Generator().manual_seed(1)
    total = 0.0
    batches = tqdm(data.batches(batch_size), total=-(-len(data) // batch_size), desc=f"NLL, k={samples}", mininterval=5)
    for images, labels in batches:
        labels = labels.to(device) if model.config.num_classes else None
        total -= (
            importance_sampled_log_likelihood(model, images.to(device), labels, samples, generator=generator)
            .sum()
            .item()
        )
    return total / len(data)


def bits_per_dimension(nll_nats: float, dimensions: int) -> float:
    """NLL of dequantized [0, 1] data -> bits per dimension on the 0..255 scale (density / 256 per dimension)."""
    return (nll_nats + dimensions * math.log(256)) / (dimensions * math.log(2))


@torch.no_grad()
def analogies(model: VAE, images: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's posterior mean decoded as every class: (N x classes images, their requested labels), image by
    image (row i holds image i drawn as class 0, 1, ...), as the service's decode draws one z with many labels."""
    model.eval()
    classes = model.config.num_classes
    z = model.encode(images.to(device)).mode().repeat_interleave(classes, dim=0)
    labels = torch.arange(classes, device=device).repeat(len(images))
    return model.decode(z, labels).cpu(), labels.cpu()
