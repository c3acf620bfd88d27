"""Measurements on a data split: reconstruction, codebook use, prior likelihood, sample quality.

`python -m training evaluate` runs them all on the test split and writes a JSON report; the
training loops call the same functions on the validation split.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.checkpoint import load_checkpoint, load_model
from training.data import ImageSet, load_dataset
from training.models.classifier import Classifier
from training.models.pixelcnn import PixelCNN
from training.models.vector_quantizer import code_statistics
from training.models.vq_vae import VQVAE
from training.run import pick_device


@torch.no_grad()
def encode_codes(model: VQVAE, images: ImageSet, device: torch.device, batch_size: int = 500) -> torch.Tensor:
    """All images of a split -> their code grids (N, h, w), on the CPU."""
    model.eval()
    codes = [model.encode(batch.to(device))[1].cpu() for batch, _ in images.batches(batch_size)]
    return torch.cat(codes)


@torch.no_grad()
def reconstruction_metrics(
    model: VQVAE, images: ImageSet, device: torch.device, batch_size: int = 500
) -> dict[str, float]:
    """MSE and PSNR of clamped reconstructions (pixels in [0, 1]), codebook usage and perplexity."""
    model.eval()
    squared_error, all_codes = 0.0, []
    for batch, _ in images.batches(batch_size):
        batch = batch.to(device)
        _, codes = model.encode(batch)
        reconstruction = model.decode_codes(codes)
        squared_error += F.mse_loss(reconstruction, batch, reduction="sum").item()
        all_codes.append(codes.cpu())
    mse = squared_error / images.images.numel()
    stats = code_statistics(torch.cat(all_codes), model.config.num_codes)
    return {"mse": mse, "psnr": 10 * math.log10(1 / mse), "codebook_usage": stats.usage, "perplexity": stats.perplexity}


def inception_score(probabilities: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))), Salimans et al. 2016, on one split of all samples."""
    marginal = probabilities.mean(0, keepdims=True)
    kl = (probabilities * (np.log(probabilities + 1e-12) - np.log(marginal + 1e-12))).sum(1)
    return float(np.exp(kl.mean()))


@torch.no_grad()
def prior_nll(prior: PixelCNN, codes: ImageSet, device: torch.device, batch_size: int = 500) -> dict[str, float]:
    """Mean negative log-likelihood of code grids in bits per code."""
    prior.eval()
    total = 0.0
    for batch, labels in codes.batches(batch_size):
        batch = batch.to(device)
        logits = prior.logits(batch, labels.to(device) if prior.config.num_classes else None)
        total += F.cross_entropy(logits.float(), batch, reduction="sum").item()
    return {"bits_per_code": total / codes.images.numel() / math.log(2)}


@torch.no_grad()
def predict_probabilities(classifier: Classifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    classifier.eval()
    device = next(classifier.parameters()).device
    chunks = [
        classifier(images[i : i + batch_size].to(device))[0].softmax(1).cpu() for i in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks)


def sample_quality(probabilities: np.ndarray, confidence: float = 0.9) -> dict[str, float]:
    return {
        "inception_score": inception_score(probabilities),
        "confident_fraction": float((probabilities.max(1) >= confidence).mean()),
    }


@dataclass
class EvaluateOptions:
    data: str = "../shared/data/mnist.npz"
    vqvae: str = "runs/vqvae/best.pt"
    prior: str = "runs/prior/best.pt"
    classifier: str = "training/weights/mnist-classifier.pt"
    samples: int = 1000  # prior samples scored by the classifier
    vae: str = ""  # evaluate this VAE checkpoint instead of a VQ-VAE and its prior
    importance_samples: int = 5000  # k for the VAE's importance-sampled NLL
    temperature: float = 1.0
    seed: int = 0
    device: str = "auto"
    out: str = "runs/evaluation.json"


EVALUATION_METHOD = (
    "`python -m training evaluate` on the {images} test images; sample quality: Inception Score "
    "(Salimans et al. 2016, one split) of {n} {conditioning} prior samples at temperature {t}, computed with "
    "the project's MNIST classifier (test accuracy {acc:.4f}) in place of Inception; confident_fraction = "
    "share of samples the classifier assigns a class with probability >= 0.9"
)


def evaluate_vqvae(options: EvaluateOptions) -> dict:
    """Every figure on the test split; writes them to `options.out` as JSON and returns them."""
    device = pick_device(options.device)
    vqvae: VQVAE = load_model(options.vqvae, "vqvae", device)
    prior: PixelCNN = load_model(options.prior, "prior", device)
    classifier_state = load_checkpoint(options.classifier)
    classifier: Classifier = load_model(options.classifier, "classifier", device)
    splits = load_dataset(options.data, vqvae.config.image_size, vqvae.config.image_channels, seed=options.seed)
    test = splits.test
    metrics = reconstruction_metrics(vqvae, test, device)
    nll = prior_nll(prior, ImageSet(encode_codes(vqvae, test, device), test.labels), device)
    grid_codes, pixels = vqvae.config.grid_size**2, np.prod(test.images.shape[1:])
    metrics.update(nll, bits_per_pixel=nll["bits_per_code"] * grid_codes / pixels)

    generator = torch.Generator().manual_seed(options.seed)
    labels = (
        torch.arange(options.samples, device=device) % prior.config.num_classes if prior.config.num_classes else None
    )
    codes = torch.cat(
        [
            prior.sample(len(chunk), options.temperature, None if labels is None else labels[chunk], generator)
            for chunk in torch.arange(options.samples).split(250)
        ]
    )
    samples = torch.cat([vqvae.decode_codes(chunk) for chunk in codes.split(500)])
    metrics.update(sample_quality(predict_probabilities(classifier, samples).numpy()))
    real = sample_quality(predict_probabilities(classifier, test.images).numpy())
    report = {
        "split": "test",
        "images": len(test),
        "metrics": metrics,
        "reference": {
            "real_test_inception_score": real["inception_score"],
            "classifier_test_accuracy": classifier_state["test_accuracy"],
        },
        "method": EVALUATION_METHOD.format(
            images=len(test),
            n=options.samples,
            conditioning="class-conditional (labels cycling through the classes)"
            if labels is not None
            else "unconditional",
            t=options.temperature,
            acc=classifier_state["test_accuracy"],
        ),
        "vqvae": options.vqvae,
        "prior": options.prior,
        "data": splits.name,
    }
    Path(options.out).parent.mkdir(parents=True, exist_ok=True)
    Path(options.out).write_text(json.dumps(report, indent=2))
    return report
