"""Checkpoint averaging: the mean of the weights, the rest of the record kept, mismatched models refused."""

from pathlib import Path

import pytest
import torch

from tests.conftest import TinyPipeline
from training.__main__ import main
from training.average import average_checkpoints
from training.checkpoint import load_checkpoint, load_model


def shifted_copy(checkpoint: Path, shift: float, out: Path) -> Path:
    state = load_checkpoint(checkpoint)
    state["model"] = {
        name: tensor + shift if tensor.is_floating_point() else tensor for name, tensor in state["model"].items()
    }
    torch.save(state, out)
    return out


def test_the_average_holds_the_mean_weights_and_loads_as_a_model(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    original = load_checkpoint(tiny_pipeline.prior)
    shifted = shifted_copy(tiny_pipeline.prior, 3.0, tmp_path / "shifted.pt")
    out = tmp_path / "average.pt"
    main(["average", "--checkpoints", f"{tiny_pipeline.prior},{shifted}", "--out", str(out)])
    average = torch.load(out, weights_only=False)
    for name, tensor in original["model"].items():
        expected = tensor + 1.5 if tensor.is_floating_point() else tensor
        torch.testing.assert_close(average["model"][name], expected)
    assert average["config"] == original["config"] and average["epoch"] == original["epoch"]
    assert average["averaged_from"] == [str(tiny_pipeline.prior), str(shifted)]
    assert "optimizer" not in average and "rng" not in average
    load_model(out, "prior")


def test_a_package_averages_with_its_own_checkpoint_to_the_same_model(
    tiny_pipeline: TinyPipeline, tmp_path: Path
) -> None:
    out = tmp_path / "average.pt"
    torch.save(average_checkpoints([str(tiny_pipeline.package), str(tiny_pipeline.prior)], "prior"), out)
    average, original = load_model(out, "prior"), load_model(tiny_pipeline.prior, "prior")
    codes = torch.randint(0, original.config.num_codes, (6, 7, 7), generator=torch.Generator().manual_seed(0))
    labels = torch.arange(6) % original.config.num_classes
    with torch.no_grad():  # the package's masked weights are folded to zero; the masks hide them either way
        torch.testing.assert_close(average.logits(codes, labels), original.logits(codes, labels))


def test_models_of_other_shapes_or_kinds_or_fewer_than_two_are_refused(tiny_pipeline: TinyPipeline) -> None:
    unconditional = tiny_pipeline.root / "prior-uncond" / "best.pt"
    with pytest.raises(ValueError, match="with the weights of"):
        average_checkpoints([str(unconditional), str(tiny_pipeline.prior)], "prior")
    with pytest.raises(ValueError, match="with the weights of"):
        average_checkpoints([str(tiny_pipeline.vqvae), str(tiny_pipeline.vqvae)], "prior")
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([str(tiny_pipeline.prior)], "prior")
