"""Shared fixtures: tiny models trained on synthetic data and exported to a temporary folder.

Nothing here reads a dataset: a fresh clone has none.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from training.classifier import train_classifier
from training.evaluate import EvaluateOptions, evaluate_vqvae
from training.export.package import ExportOptions
from training.export.vae import export_vae
from training.export.vqvae import export_vqvae
from training.models.classifier import ClassifierConfig
from training.models.pixelcnn import PixelCNNConfig
from training.models.vae import VAEConfig
from training.models.vq_vae import VQVAEConfig
from training.prior import PriorOptions, train_prior
from training.run import RunOptions
from training.vae import VAEOptions, train_vae
from training.vqvae import train_vqvae

# Tests start many servers, in-process and as processes: none of them opens the gRPC port unless a test asks.
os.environ.setdefault("GRPC_PORT", "0")

DATA = "synthetic:240"
TINY_VQVAE = VQVAEConfig(hidden=16, residual_hidden=8, residual_blocks=1, num_codes=16, code_dim=4)
TINY_PRIOR = PixelCNNConfig(channels=8, layers=3, kernel=3, head_hidden=16)
TINY_VAE = VAEConfig(latent_dim=2, hidden=32)
TINY_CVAE = VAEConfig(architecture="conv", likelihood="gaussian", latent_dim=3, channels=4)


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
    vae: Path  # an MLP VAE with a 2-D latent
    vae_package: Path  # models/tiny-vae/1
    cvae_package: Path  # models/tiny-cvae/1: a conv VAE with a class-conditional decoder, Gaussian pixels


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyPipeline:
    """Stage 1, stage 2, the classifier, evaluation and export, all on 240 synthetic images."""
    root = tmp_path_factory.mktemp("pipeline")
    vqvae = train_vqvae(run_options(root / "vqvae"), TINY_VQVAE)
    prior = train_prior(run_options(root / "prior"), PriorOptions(vqvae=str(vqvae), conditional=True), TINY_PRIOR)
    # The unconditional package's VQ-VAE is fine-tuned with a rate weight, so that its code penalty
    # travels through export into the service.
    rate_vqvae = train_vqvae(
        replace(run_options(root / "vqvae-rate", epochs=1), init=str(vqvae)), replace(TINY_VQVAE, rate_weight=0.05)
    )
    # ... and its prior trains on jittered images encoded batch by batch (--augment).
    unconditional = train_prior(
        run_options(root / "prior-uncond", epochs=1), PriorOptions(vqvae=str(rate_vqvae), augment=0.5), TINY_PRIOR
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
            vqvae=str(rate_vqvae), prior=str(unconditional), evaluation="", data=DATA, out=str(models), id="tiny-uncond"
        )
    )
    vae = train_vae(run_options(root / "vae"), VAEOptions(), TINY_VAE)
    cvae = train_vae(run_options(root / "cvae"), VAEOptions(conditional=True), TINY_CVAE)
    vae_package, cvae_package = (
        export_vae(ExportOptions(vae=str(path), evaluation="", data=DATA, out=str(models), id=name))
        for path, name in ((vae, "tiny-vae"), (cvae, "tiny-cvae"))
    )
    return TinyPipeline(
        root,
        vqvae,
        prior,
        classifier,
        evaluation,
        models,
        package,
        unconditional_package,
        vae,
        vae_package,
        cvae_package,
    )
