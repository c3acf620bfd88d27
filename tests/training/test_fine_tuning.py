"""--init fine-tunes from a checkpoint; --only-new trains only the weights the model adds to it: an unconditional
prior made class-conditional keeps every weight it had and trains only its class biases."""

from dataclasses import replace

import pytest
import torch

from tests.conftest import TINY_PRIOR, TinyPipeline, run_options
from training.prior import PriorOptions, train_prior


def weights(checkpoint) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, weights_only=False)["model"]


def test_only_the_new_class_biases_train(tiny_pipeline: TinyPipeline, tmp_path) -> None:
    unconditional = train_prior(
        run_options(tmp_path / "plain", epochs=1), PriorOptions(vqvae=str(tiny_pipeline.vqvae)), TINY_PRIOR
    )
    options = replace(run_options(tmp_path / "conditional", epochs=1), init=str(unconditional), only_new=True)
    conditional = train_prior(options, PriorOptions(vqvae=str(tiny_pipeline.vqvae), conditional=True), TINY_PRIOR)
    before, after = weights(unconditional), weights(conditional)
    assert {name for name in after if name not in before} == {f"layers.{i}.class_bias.weight" for i in range(3)}
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert all(after[f"layers.{i}.class_bias.weight"].abs().max() > 0 for i in range(3))


def test_only_new_needs_a_checkpoint_to_hold(tiny_pipeline: TinyPipeline, tmp_path) -> None:
    options = replace(run_options(tmp_path / "nothing", epochs=1), only_new=True)
    with pytest.raises(ValueError, match="needs --init"):
        train_prior(options, PriorOptions(vqvae=str(tiny_pipeline.vqvae)), TINY_PRIOR)
    same = replace(options, init=str(tiny_pipeline.prior))
    with pytest.raises(ValueError, match="adds no weights"):
        train_prior(same, PriorOptions(vqvae=str(tiny_pipeline.vqvae), conditional=True), TINY_PRIOR)
