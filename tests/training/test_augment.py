from dataclasses import replace

import pytest
import torch

from tests.conftest import TINY_PRIOR, TINY_VQVAE
from training.augment import AffineJitter, jitter
from training.models.pixelcnn import PixelCNN
from training.models.vq_vae import VQVAE
from training.prior import jittered_prior_loss, prior_loss


def blobs(n: int, size: int = 28) -> torch.Tensor:
    """Bright squares at random places away from the border."""
    images = torch.zeros(n, 1, size, size)
    for image, (row, col) in zip(images, torch.randint(8, size - 12, (n, 2)), strict=True):
        image[0, row : row + 4, col : col + 4] = 1.0
    return images


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    grid = torch.arange(images.shape[-1], dtype=torch.float32)
    mass = images.sum((1, 2, 3))
    rows = (images.sum((1, 3)) * grid).sum(1) / mass
    cols = (images.sum((1, 2)) * grid).sum(1) / mass
    return torch.stack([rows, cols], 1)


def test_share_zero_leaves_the_batch_alone() -> None:
    images = blobs(8)
    out, moved = jitter(images, AffineJitter(0.0))
    assert out is images and not moved.any()


@pytest.mark.parametrize("share", [-0.5, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        AffineJitter(share)


def test_a_move_of_size_zero_is_the_identity() -> None:
    images = blobs(8)
    still = AffineJitter(1.0, degrees=0.0, scale=0.0, shift=0.0)
    out, moved = jitter(images, still)
    assert moved.all()
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_shifts_stay_within_bounds_and_keep_the_ink() -> None:
    torch.manual_seed(0)
    images = blobs(64)
    moved, _ = jitter(images, AffineJitter(1.0, degrees=0.0, scale=0.0, shift=2.0))
    offsets = centre_of_mass(moved) - centre_of_mass(images)
    assert offsets.abs().max() <= 2.0 + 1e-4
    assert offsets.abs().mean() > 0.5  # they did move
    torch.testing.assert_close(moved.sum((1, 2, 3)), images.sum((1, 2, 3)), atol=1e-3, rtol=1e-4)


def test_rotation_and_zoom_keep_the_centre_and_roughly_the_ink() -> None:
    torch.manual_seed(0)
    images = torch.zeros(16, 1, 28, 28)
    images[:, :, 10:18, 12:16] = 1.0  # a bar around the centre (13.5, 13.5)
    moved, _ = jitter(images, AffineJitter(1.0, degrees=15.0, scale=0.1, shift=0.0))
    assert not torch.allclose(moved, images)
    torch.testing.assert_close(centre_of_mass(moved), centre_of_mass(images), atol=0.05, rtol=0)
    ratio = moved.sum((1, 2, 3)) / images.sum((1, 2, 3))
    assert ((ratio > 0.8**2) & (ratio < 1.2**2)).all()  # area scales with the zoom squared


@pytest.mark.parametrize("share", [0.25, 0.75])
def test_about_the_given_share_is_moved(share: float) -> None:
    torch.manual_seed(0)
    images = blobs(400)
    out, moved = jitter(images, AffineJitter(share))
    changed = (out != images).flatten(1).any(1)
    assert torch.equal(changed, moved)
    assert abs(moved.float().mean().item() - share) < 0.08


def test_the_jittered_loss_is_the_prior_loss_on_the_codes_of_the_moved_images() -> None:
    vqvae = VQVAE(TINY_VQVAE).eval()
    prior = PixelCNN(replace(TINY_PRIOR, num_codes=TINY_VQVAE.num_codes, moved_bias=True)).eval()
    for layer in prior.layers:
        torch.nn.init.normal_(layer.moved_bias)
    images, labels, settings = blobs(16), torch.full((16,), -1), AffineJitter(0.5)
    encoded = []
    encode = vqvae.encode
    vqvae.encode = lambda x: encoded.append(x) or encode(x)
    with torch.no_grad():
        torch.manual_seed(1)
        loss = jittered_prior_loss(vqvae, settings)(prior, images, labels, 0)
        torch.manual_seed(1)
        out, moved = jitter(images, settings)
        assert 0 < moved.sum() < len(moved)
        torch.testing.assert_close(encoded[0], out, atol=0, rtol=0)
        codes = encode(out)[1]
        torch.testing.assert_close(loss, prior_loss(prior, codes, labels, 0, moved))
        assert loss.item() != pytest.approx(prior_loss(prior, codes, labels, 0).item())  # the moved rows' bias counts
