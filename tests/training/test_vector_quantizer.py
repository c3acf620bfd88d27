import pytest
import torch

from training.models.vector_quantizer import VectorQuantizer, code_statistics


def make_quantizer(**kwargs) -> VectorQuantizer:
    quantizer = VectorQuantizer(num_codes=4, code_dim=2, **kwargs)
    quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    quantizer.code_sum.copy_(quantizer.codebook)
    quantizer.initialized.fill_(True)
    return quantizer


def grid(vectors: list[list[float]]) -> torch.Tensor:
    """N vectors of size D -> z_e (1, D, 1, N)."""
    return torch.tensor(vectors).t()[None, :, None, :]


def test_nearest_code_is_chosen() -> None:
    quantizer = make_quantizer().eval()
    z_q, codes, _ = quantizer(grid([[0.1, -0.1], [0.9, 0.2], [0.2, 0.7], [4.0, 6.0]]))
    assert codes.flatten().tolist() == [0, 1, 2, 3]
    assert torch.equal(z_q, quantizer.lookup(codes))


def test_straight_through_gradient_reaches_encoder_and_commitment_pulls_toward_code() -> None:
    quantizer = make_quantizer(beta=0.5).eval()
    z_e = grid([[0.2, 0.0]]).requires_grad_()
    z_q, _, commit_loss = quantizer(z_e)
    (z_q.sum() + commit_loss).backward()
    # d(sum z_q)/dz_e = 1 (straight-through); commitment adds beta * 2 * (z_e - code) / numel.
    expected = torch.ones_like(z_e) + 0.5 * 2 * (z_e.detach() - grid([[0.0, 0.0]])) / 2
    assert torch.allclose(z_e.grad, expected)


def test_ema_update_moves_code_toward_assigned_vectors() -> None:
    quantizer = make_quantizer(decay=0.5, restart_threshold=0.0).train()
    before = quantizer.codebook[1].clone()
    quantizer(grid([[1.4, 0.0], [1.6, 0.0]]))
    after = quantizer.codebook[1]
    assert after[0] > before[0] and after[0] < 1.5  # halfway toward the batch mean 1.5, then smoothed
    assert torch.allclose(quantizer.codebook[3], torch.tensor([5.0, 5.0]))  # unused codes stay


def test_dead_codes_restart_from_encoder_outputs() -> None:
    quantizer = make_quantizer(decay=0.5, restart_threshold=0.9).train()
    batch = [[0.1, 0.0], [0.0, 0.1], [1.1, 0.0], [0.0, 1.2]]
    quantizer(grid(batch))
    restarted = quantizer.codebook[3]  # far from every input: its EMA count fell below threshold
    assert any(torch.allclose(restarted, torch.tensor(v)) for v in batch)


def test_rate_weight_prefers_the_frequent_of_two_close_codes() -> None:
    vector = grid([[0.55, 0.0]])  # a little nearer code 1 than code 0
    plain = make_quantizer().eval()
    assert plain(vector).codes.item() == 1
    constrained = make_quantizer(rate_weight=0.1).eval()
    constrained.cluster_size.copy_(torch.tensor([100.0, 1.0, 1.0, 1.0]))  # code 0 is used 100x as often
    assert constrained(vector).codes.item() == 0  # 0.1 * log2(100) outweighs the 0.1 difference in squared distance
    assert constrained(grid([[0.9, 0.0]])).codes.item() == 1  # but not a clear win on distance


def test_a_negative_rate_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_weight must be >= 0"):
        make_quantizer(rate_weight=-0.1)


def test_restarted_codes_start_at_an_average_count_under_a_rate_weight() -> None:
    quantizer = make_quantizer(decay=0.5, restart_threshold=0.9, rate_weight=0.1).train()
    batch = [[0.1, 0.0], [0.0, 0.1], [1.1, 0.0], [0.0, 1.2]]
    quantizer(grid(batch))
    count = quantizer.cluster_size[3]
    assert count == pytest.approx(quantizer.cluster_size.mean().item(), rel=0.3) and count > 0.9
    assert torch.allclose(quantizer.code_sum[3] / count, quantizer.codebook[3])


def test_codebook_initialises_from_data() -> None:
    quantizer = VectorQuantizer(num_codes=8, code_dim=3).train()
    z_e = torch.randn(2, 3, 4, 4) + 10
    quantizer(z_e)
    assert bool(quantizer.initialized)
    assert quantizer.codebook.mean() > 5  # seeded from the inputs, not the random init near 0


@pytest.mark.parametrize(
    "codes, usage, perplexity", [([0, 0, 0, 0], 0.25, 1.0), ([0, 1, 2, 3], 1.0, 4.0), ([0, 0, 1, 1], 0.5, 2.0)]
)
def test_code_statistics(codes: list[int], usage: float, perplexity: float) -> None:
    stats = code_statistics(torch.tensor(codes), num_codes=4)
    assert stats.usage == pytest.approx(usage)
    assert stats.perplexity == pytest.approx(perplexity)
