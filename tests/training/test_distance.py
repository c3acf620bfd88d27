"""The distances between samples and real images: known answers for Gaussians, and unbiasedness of KID."""

import numpy as np
import torch

from training.metrics.distance import distribution_distances, frechet_distance, kernel_mmd, pca_features


def gaussian(n: int, dims: int, *, mean: float = 0.0, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    return mean + scale * np.random.default_rng(seed).standard_normal((n, dims))


def test_the_frechet_distance_of_gaussians_is_the_closed_form() -> None:
    a = gaussian(20_000, 4)
    assert frechet_distance(a, a) < 1e-6
    # Means 1 apart in each of 4 dimensions, equal covariances: |mu_a - mu_b|^2 = 4.
    assert abs(frechet_distance(a, gaussian(20_000, 4, mean=1.0, seed=1)) - 4) < 0.1
    # Standard deviations 1 and 2: tr(I + 4I - 2 * 2I) = 4 dimensions x 1.
    assert abs(frechet_distance(a, gaussian(20_000, 4, scale=2.0, seed=1)) - 4) < 0.15


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_shift() -> None:
    a, same = gaussian(1000, 8), gaussian(1000, 8, seed=1)
    near, far = gaussian(1000, 8, mean=0.3, seed=2), gaussian(1000, 8, mean=1.0, seed=3)
    assert abs(kernel_mmd(a, same)) < 0.01  # unbiased: it may even fall below zero
    assert 0.01 < kernel_mmd(a, near) < kernel_mmd(a, far)


def test_the_kernel_sums_in_blocks_of_rows_equal_the_whole_matrix() -> None:
    a, b = gaussian(2500, 8), gaussian(300, 8, mean=0.2, seed=1)  # more rows than one block holds
    dimension = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / dimension + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    whole = (
        (k_aa.sum() - np.trace(k_aa)) / (2500 * 2499) + (k_bb.sum() - np.trace(k_bb)) / (300 * 299) - 2 * k_ab.mean()
    )
    assert abs(kernel_mmd(a, b) - whole) < 1e-9


def test_kid_over_all_pairs_is_steadier_than_the_mean_of_blocks() -> None:
    # One distribution, eight draws of 5,000 against 5,000: near zero, the noise of the all-pairs estimate falls
    # with the sample count, the mean over 5 blocks' only with the square root of the blocks (expected ratio 0.45).
    pairs = [(gaussian(5000, 16, seed=s), gaussian(5000, 16, seed=100 + s)) for s in range(8)]
    all_pairs = [distribution_distances(a, b)["kid"] for a, b in pairs]
    block_means = [np.mean([kernel_mmd(a[i::5], b[i::5]) for i in range(5)]) for a, b in pairs]
    assert np.std(all_pairs) < 0.7 * np.std(block_means)


def test_kid_comes_with_its_spread_over_disjoint_blocks() -> None:
    distances = distribution_distances(gaussian(5000, 8, mean=0.5), gaussian(3000, 8, seed=1))
    assert distances["kid_blocks"] == 5 and distances["kid_std"] > 0
    assert distances["kid"] > 5 * distances["kid_std"] and distances["frechet_distance"] > 1.5


def test_the_pca_features_keep_the_training_images_main_axes() -> None:
    rng = np.random.default_rng(0)
    # Images that vary along one pixel pattern only, and a little noise.
    pattern = rng.standard_normal(16)
    train = torch.from_numpy(rng.standard_normal((500, 1)) * pattern + 0.01 * rng.standard_normal((500, 16)))
    features = pca_features(train.reshape(500, 1, 4, 4), components=3)(train.reshape(500, 1, 4, 4))
    assert features.shape == (500, 3)
    variances = features.var(0)
    assert variances[0] > 100 * variances[1]


def test_a_reference_smaller_than_a_block_is_used_whole_by_every_block() -> None:
    distances = distribution_distances(gaussian(5000, 8), gaussian(300, 8, seed=1))
    assert distances["kid_blocks"] == 5 and abs(distances["kid"]) < 0.02
