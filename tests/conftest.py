"""Shared fixtures: tiny models trained on synthetic data and exported to a temporary folder.

Nothing here reads ../shared: a fresh clone has none.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest

from training.evaluate import EvaluateOptions, evaluate_vqvae
from training.export import ExportOptions, export_vqvae
from training.models.classifier import ClassifierConfig
from training.models.pixelcnn import PixelCNNConfig
from training.models.vq_vae import VQVAEConfig
from training.run import RunOptions
from training.train import train_vqvae
from training.train_classifier import train_classifier
from training.train_prior import PriorOptions, train_prior

DATA = "synthetic:240"
TINY_VQVAE = VQVAEConfig(hidden=16, residual_hidden=8, residual_blocks=1, num_codes=16, code_dim=4)
TINY_PRIOR = PixelCNNConfig(channels=8, layers=3, kernel=3, head_hidden=16)


def run_options(out: Path, epochs: int = 2) -> RunOptions:
    return RunOptions(data=DATA, out=str(out), epochs=epochs, batch_size=32, lr=3e-3, warmup_steps=2)


@dataclass
class TinyPipeline:
    root: Path
    vqvae: Path
    prior: Path  # class-conditional
    classifier: Path
    evaluation: Path
    models: Path  # the exported_models folder
    package: Path  # models/tiny-vqvae/1, class-conditional prior
    unconditional_package: Path  # models/tiny-uncond/1


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyPipeline:
    """Stage 1, stage 2, the classifier, evaluation and export, all on 240 synthetic images."""
    root = tmp_path_factory.mktemp("pipeline")
    vqvae = train_vqvae(run_options(root / "vqvae"), TINY_VQVAE)
    prior = train_prior(run_options(root / "prior"), PriorOptions(vqvae=str(vqvae), conditional=True), TINY_PRIOR)
    unconditional = train_prior(
        run_options(root / "prior-uncond", epochs=1), PriorOptions(vqvae=str(vqvae)), TINY_PRIOR
    )
    classifier = train_classifier(run_options(root / "classifier"), ClassifierConfig(channels=4, hidden=16))
    evaluation = root / "evaluation.json"
    evaluate_vqvae(
        EvaluateOptions(
            data=DATA,
            vqvae=str(vqvae),
            prior=str(prior),
            classifier=str(classifier),
            samples=20,
            device="cpu",
            out=str(evaluation),
        )
    )
    models = root / "exported_models"
    package = export_vqvae(
        ExportOptions(
            vqvae=str(vqvae),
            prior=str(prior),
            evaluation=str(evaluation),
            data=DATA,
            out=str(models),
            id="tiny-vqvae",
            hardware="test",
        )
    )
    unconditional_package = export_vqvae(
        ExportOptions(
            vqvae=str(vqvae), prior=str(unconditional), evaluation="", data=DATA, out=str(models), id="tiny-uncond"
        )
    )
    return TinyPipeline(root, vqvae, prior, classifier, evaluation, models, package, unconditional_package)
