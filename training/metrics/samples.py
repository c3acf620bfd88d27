"""Sample quality judged by a classifier of the data's classes: the Inception Score (Salimans et al. 2016)
with a project classifier in place of Inception, the share of samples it is confident about, and, for images
drawn as a chosen class, the share it assigns to that class."""

import numpy as np
import torch

from training.models.classifier import Classifier


def inception_score(probabilities: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))), Salimans et al. 2016, on one split of all samples."""
    marginal = probabilities.mean(0, keepdims=True)
    kl = (probabilities * (np.log(probabilities + 1e-12) - np.log(marginal + 1e-12))).sum(1)
    return float(np.exp(kl.mean()))


@torch.no_grad()
def predict_probabilities(classifier: Classifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    classifier.eval()
    device = next(classifier.parameters()).device
    chunks = [
        classifier(images[i : i + batch_size].to(device)).logits.softmax(1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks)


def sample_quality(probabilities: np.ndarray, confidence: float = 0.9) -> dict[str, float]:
    return {
        "inception_score": inception_score(probabilities),
        "confident_fraction": float((probabilities.max(1) >= confidence).mean()),
    }


def label_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The share of images the classifier assigns to the class they were drawn as."""
    return float((probabilities.argmax(1) == labels).mean())
