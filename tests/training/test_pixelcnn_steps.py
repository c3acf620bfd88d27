"""The row and position steps reproduce the full PixelCNN at every sampling step."""

import numpy as np
import pytest
import torch

from contract.sampling import sample_codes, sample_codes_cached
from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.models.pixelcnn_steps import torch_steps


@pytest.mark.parametrize(
    "config",
    [
        PixelCNNConfig(12, 5, 5, channels=8, layers=4, kernel=3, head_hidden=16, moved_bias=True),
        PixelCNNConfig(12, 7, 5, channels=8, layers=3, kernel=5, head_hidden=16, num_classes=3),  # Frey's 7x5
        PixelCNNConfig(6, 4, 6, channels=4, layers=2, kernel=7, head_hidden=8),
    ],
)
def test_cached_logits_match_the_full_model_at_every_step(config: PixelCNNConfig) -> None:
    torch.manual_seed(0)
    prior = PixelCNN(config).eval()
    for layer in prior.layers:  # class biases start at zero-mean noise, moved biases at zero; make them matter
        if layer.class_bias is not None:
            torch.nn.init.normal_(layer.class_bias.weight)
        if layer.moved_bias is not None:  # a training-only bias: sampling must leave it out
            torch.nn.init.normal_(layer.moved_bias)
    n, (h, w) = 4, config.grid
    labels = np.array([2, 0, 2, 1]) if config.num_classes else None  # row 0 runs once per distinct label
    steps = torch_steps(prior)
    recorded = []
    position = steps.position
    steps.position = lambda *args: recorded.append(position(*args)) or recorded[-1]

    codes = sample_codes_cached(steps, np.zeros((n, h, w), np.int64), np.ones((n, h, w), bool), seed=3, labels=labels)
    with torch.no_grad():
        full = prior.logits(torch.from_numpy(codes), None if labels is None else torch.from_numpy(labels)).numpy()
    for index, (logits, _) in enumerate(recorded):
        i, j = divmod(index, w)
        np.testing.assert_allclose(logits, full[:, :, i, j], atol=1e-4, err_msg=f"step ({i}, {j})")

    def naive(grid: np.ndarray, grid_labels: np.ndarray | None) -> np.ndarray:
        with torch.no_grad():
            return prior.logits(
                torch.from_numpy(grid), None if grid_labels is None else torch.from_numpy(grid_labels)
            ).numpy()

    same_seed = sample_codes(naive, np.zeros((n, h, w), np.int64), np.ones((n, h, w), bool), seed=3, labels=labels)
    assert np.array_equal(codes, same_seed)


def test_guided_cached_sampling_draws_what_the_full_model_draws() -> None:
    torch.manual_seed(0)
    config = PixelCNNConfig(12, 4, 3, channels=8, layers=3, kernel=3, head_hidden=16, num_classes=3, label_dropout=0.1)
    prior = PixelCNN(config).eval()
    for layer in prior.layers:
        torch.nn.init.normal_(layer.class_bias.weight)
    labels, guidance = np.array([0, 2, 3, 1]), np.array([1.5, 3.0, 1.0, 0.0])  # 3: "no label"
    start, mask = np.zeros((4, 4, 3), np.int64), np.ones((4, 4, 3), bool)

    def full(grid: np.ndarray, grid_labels: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return prior.logits(torch.from_numpy(grid), torch.from_numpy(grid_labels)).numpy()

    given = {"seed": 5, "labels": labels, "guidance": guidance, "no_label": config.no_label}
    cached = sample_codes_cached(torch_steps(prior), start, mask, **given)
    assert np.array_equal(cached, sample_codes(full, start, mask, **given))
    assert not np.array_equal(cached, sample_codes(full, start, mask, seed=5, labels=labels))
