"""How far samples lie from real images as distributions, in a feature space: the Fréchet distance (Heusel et al.
2017, FID with a project classifier's penultimate features in place of Inception's) and the kernel inception
distance (KID: the unbiased squared MMD with the cubic polynomial kernel, Bińkowski et al. 2018).

A score that only asks whether each sample looks like some class (the Inception Score, label accuracy) rises when
samples crowd onto each class's most typical form; these fall only when the samples spread as the data does.
KID is unbiased at any sample count: it is computed over every pair of all samples and all real images, and comes
with its spread over disjoint blocks of 1,000 (Bińkowski et al.'s subset size). The block mean estimates the same
quantity, but near zero its noise falls only with the square root of the number of blocks, while the all-pairs
estimate's falls with the number of samples. The Fréchet distance is biased upwards at small counts, so figures
compare only at equal counts.
"""

from collections.abc import Callable

import numpy as np
import torch

from training.models.classifier import Classifier

Features = Callable[[torch.Tensor], np.ndarray]  # images (N, C, H, W) in [0, 1] -> features (N, F)
KID_BLOCK = 1000  # samples per KID block (Bińkowski et al. use subsets of 1,000)
KERNEL_ROWS = 2000  # rows of a kernel matrix held at once


def classifier_features(classifier: Classifier, batch_size: int = 1000) -> Features:
    """The classifier's penultimate activations, the feature space of the distances."""

    @torch.no_grad()
    def features(images: torch.Tensor) -> np.ndarray:
        classifier.eval()
        device = next(classifier.parameters()).device
        chunks = [
            classifier.penultimate(images[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(chunks).double().numpy()

    return features


def pca_features(reference: torch.Tensor, components: int = 64) -> Features:
    """Pixels projected on the first `components` principal axes of `reference` images (training images): a
    feature space that needs no labels, for data without classes (the Frey faces)."""
    pixels = reference.flatten(1).double().numpy()
    mean = pixels.mean(0)
    axes = np.linalg.svd(pixels - mean, full_matrices=False)[2][:components]

    def features(images: torch.Tensor) -> np.ndarray:
        return (images.flatten(1).double().numpy() - mean) @ axes.T

    return features


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to features (N, F)."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr (S_a S_b)^(1/2) = sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), which is
    # symmetric positive semi-definite: eigh stays real where scipy's sqrtm on S_a S_b may not.
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def kernel_sum(x: np.ndarray, y: np.ndarray) -> float:
    """The sum of k(x_i, y_j) = (x_i.y_j / F + 1)^3 over every pair, a block of rows at a time."""
    chunks = (x[i : i + KERNEL_ROWS] for i in range(0, len(x), KERNEL_ROWS))
    return float(sum(((chunk @ y.T / x.shape[1] + 1) ** 3).sum() for chunk in chunks))


def kernel_mmd(a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased squared MMD between features (m, F) and (n, F) under k(x, y) = (x.y / F + 1)^3."""
    m, n = len(a), len(b)
    dimension = a.shape[1]
    # A set's kernel with itself, less its diagonal k(x, x) = (|x|^2 / F + 1)^3
    within_a = (kernel_sum(a, a) - (((a**2).sum(1) / dimension + 1) ** 3).sum()) / (m * (m - 1))
    within_b = (kernel_sum(b, b) - (((b**2).sum(1) / dimension + 1) ** 3).sum()) / (n * (n - 1))
    return within_a + within_b - 2 * kernel_sum(a, b) / (m * n)


def distribution_distances(samples: np.ndarray, real: np.ndarray, block: int = KID_BLOCK) -> dict[str, float]:
    """The Fréchet distance and KID over all samples and all real images, and KID's standard deviation over
    disjoint blocks (`kid_std`, `kid_blocks`): the i-th `block` of samples against the i-th `block` of the real
    images, each set in a fixed shuffled order (real blocks cycled when there are fewer, and used whole when fewer
    than a block). Shuffled, because a split may be ordered: MNIST's test set holds one population of writers in
    its first half and another in its second."""
    # Blocks alike, whatever the order of either set
    samples = samples[np.random.default_rng(0).permutation(len(samples))]
    real = real[np.random.default_rng(1).permutation(len(real))]
    sample_size, real_size = min(block, len(samples)), min(block, len(real))
    blocks, real_blocks = len(samples) // sample_size, len(real) // real_size
    kids = [
        kernel_mmd(
            samples[i * sample_size : (i + 1) * sample_size],
            real[(i % real_blocks) * real_size : (i % real_blocks + 1) * real_size],
        )
        for i in range(blocks)
    ]
    return {
        "frechet_distance": frechet_distance(samples, real),
        "kid": kernel_mmd(samples, real),
        "kid_std": float(np.std(kids)),
        "kid_blocks": blocks,
    }
