import pytest
import torch

from training.models.pixelcnn import PixelCNN, PixelCNNConfig


def make_prior(**kwargs) -> PixelCNN:
    torch.manual_seed(0)
    return PixelCNN(
        PixelCNNConfig(
            **{
                "num_codes": 10,
                "grid_height": 5,
                "grid_width": 5,
                "channels": 8,
                "layers": 4,
                "kernel": 3,
                "head_hidden": 16,
                **kwargs,
            }
        )
    ).eval()


@pytest.mark.parametrize("num_classes", [0, 3])
def test_shapes_and_loss(num_classes: int) -> None:
    prior = make_prior(num_classes=num_classes)
    codes = torch.randint(0, 10, (4, 5, 5))
    labels = torch.tensor([0, 1, 2, 0]) if num_classes else None
    logits, loss = prior(codes, labels)
    assert logits.shape == (4, 10, 5, 5)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, codes).item())


def dependence(prior: PixelCNN, i: int, j: int) -> torch.Tensor:
    """Which positions, when their code changes, change the logits at (i, j): (h, w) bools."""
    size, vocabulary = prior.config.grid_height, prior.config.num_codes
    codes = torch.randint(0, vocabulary, (1, size, size))
    reference = prior.logits(codes)[0, :, i, j]
    depends = torch.zeros(size, size, dtype=torch.bool)
    for a in range(size):
        for b in range(size):
            changed = codes.clone()
            changed[0, a, b] = (changed[0, a, b] + 1) % vocabulary
            depends[a, b] = not torch.allclose(prior.logits(changed)[0, :, i, j], reference)
    return depends


@pytest.mark.parametrize("i, j", [(0, 0), (2, 2), (4, 1), (3, 4), (4, 4)])
def test_causal_and_without_blind_spot(i: int, j: int) -> None:
    prior = make_prior()
    depends = dependence(prior, i, j)
    earlier = torch.zeros(5, 5, dtype=torch.bool)
    earlier[:i] = True
    earlier[i, :j] = True
    assert not (depends & ~earlier).any(), "logits change with the current or a later position"
    assert depends[earlier].all(), "some earlier position is outside the receptive field (blind spot)"


def test_class_conditioning_changes_logits() -> None:
    prior = make_prior(num_classes=2)
    torch.nn.init.normal_(prior.layers[0].class_bias.weight)
    codes = torch.randint(0, 10, (1, 5, 5))
    assert not torch.allclose(prior.logits(codes, torch.tensor([0])), prior.logits(codes, torch.tensor([1])))


def test_sampling_is_seeded_and_respects_vocabulary() -> None:
    prior = make_prior()
    first = prior.sample(3, generator=torch.Generator().manual_seed(1))
    again = prior.sample(3, generator=torch.Generator().manual_seed(1))
    assert first.shape == (3, 5, 5) and torch.equal(first, again)
    assert first.min() >= 0 and first.max() < 10


def test_the_moved_bias_touches_only_the_moved_rows() -> None:
    prior = make_prior(moved_bias=True)
    for layer in prior.layers:
        torch.nn.init.normal_(layer.moved_bias)
    codes = torch.randint(0, 10, (3, 5, 5))
    plain = prior.logits(codes)
    marked = prior.logits(codes, moved=torch.tensor([True, False, False]))
    assert torch.equal(marked[1:], plain[1:])
    assert not torch.allclose(marked[0], plain[0])
