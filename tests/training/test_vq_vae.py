import pytest
import torch

from training.models.vq_vae import VQVAE, VQVAEConfig


@pytest.mark.parametrize(
    "config",
    [
        VQVAEConfig(hidden=16, residual_hidden=8, num_codes=32, code_dim=4),
        VQVAEConfig(
            image_channels=3,
            image_height=32,
            image_width=40,
            hidden=32,
            residual_hidden=8,
            residual_blocks=0,
            downsamples=3,
            num_codes=8,
            code_dim=2,
        ),
        VQVAEConfig(
            image_height=28,
            image_width=20,
            hidden=8,
            residual_hidden=4,
            residual_blocks=3,
            downsamples=1,
            num_codes=4,
            code_dim=3,
        ),
    ],
)
def test_shapes(config: VQVAEConfig) -> None:
    model = VQVAE(config)
    images = torch.rand(2, config.image_channels, config.image_height, config.image_width)
    reconstruction, codes, loss = model(images)
    g = config.grid
    assert reconstruction.shape == images.shape
    assert codes.shape == (2, *g) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < config.num_codes
    assert loss.ndim == 0 and torch.isfinite(loss)
    z_e, encoded = model.eval().encode(images)
    assert z_e.shape == (2, config.code_dim, *g)
    decoded = model.decode_codes(encoded)
    assert decoded.shape == images.shape
    assert decoded.min() >= 0 and decoded.max() <= 1  # the served decoder clamps to pixel range


def test_a_few_steps_reduce_the_loss() -> None:
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(hidden=16, residual_hidden=8, num_codes=16, code_dim=4))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images = torch.rand(16, 1, 28, 28).round()
    losses = []
    for _ in range(30):
        loss = model(images).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
