"""A prior trained with label dropout learns "no label" too: labels become optional when sampling."""

import numpy as np
import pytest
import torch

from contract.manifest import read_manifest
from service.sampling import SampleRequest, sample
from tests.conftest import DATA, TinyPipeline
from training.evaluate import EvaluateOptions, evaluate_vqvae
from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.prior import prior_loss


def test_the_loss_hides_the_share_of_labels_it_is_told_to() -> None:
    prior = PixelCNN(
        PixelCNNConfig(10, 4, 4, channels=4, layers=2, kernel=3, head_hidden=8, num_classes=3, label_dropout=0.5)
    )
    seen = []
    prior.layers[0].class_bias.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    codes, labels = torch.randint(0, 10, (400, 4, 4)), torch.randint(0, 3, (400,))
    prior_loss(prior.train(), codes, labels, 0)
    assert 0.4 < (seen[0] == 3).float().mean() < 0.6  # the "no label" class, 3
    prior_loss(prior.eval(), codes, labels, 0)
    assert torch.equal(seen[1], labels)  # never while evaluating


def test_the_package_says_labels_are_optional_and_the_service_samples_either_way(optional_labels) -> None:
    package, model, _ = optional_labels
    prior = read_manifest(package).prior
    assert prior.conditional and prior.num_classes == 10 and prior.labels_optional
    with_labels = sample(model, SampleRequest(n=4, seed=3, labels=[7]))
    without = sample(model, SampleRequest(n=4, seed=3))
    assert with_labels["codes"].shape == without["codes"].shape == (4, 7, 7)
    with pytest.raises(Exception, match=r"\[0, 10\)"):
        sample(model, SampleRequest(seed=0, labels=[10]))  # "no label" is the service's to send, not a class
    given, mask = with_labels["codes"][0], np.zeros((7, 7), bool)
    mask[3:] = True  # completion, with a label and without
    for chosen in ([5], None):
        completed = sample(model, SampleRequest(n=3, seed=1, labels=chosen, codes=given, mask=mask))["codes"]
        assert (completed[:, ~mask] == given[~mask]).all()
    assert not np.array_equal(sample(model, SampleRequest(n=4, seed=3, labels=[0]))["codes"], with_labels["codes"])


def test_evaluation_scores_samples_with_their_labels_and_without_any(
    tiny_pipeline: TinyPipeline, optional_labels, tmp_path
) -> None:
    prior = optional_labels[2]
    options = EvaluateOptions(
        data=DATA, vqvae=str(tiny_pipeline.vqvae), prior=str(prior), classifier=str(tiny_pipeline.classifier),
        samples=20, device="cpu", out=str(tmp_path / "evaluation.json"),
    )  # fmt: skip
    metrics = evaluate_vqvae(options)["metrics"]
    assert 0 <= metrics["label_accuracy"] <= 1 and 0 <= metrics["unconditional_confident_fraction"] <= 1
    again = evaluate_vqvae(options)["metrics"]  # the same seed draws the same samples
    assert again["unconditional_inception_score"] == metrics["unconditional_inception_score"]
