"""Sample quality judged by a classifier of the data's classes: the Inception Score (Salimans et al. 2016)
with a project classifier in place of Inception, the share of samples it is confident about, and, for images
drawn as a chosen class, the share it assigns to that class; beside them, the samples' distance from real images
as distributions (distance.py)."""

from dataclasses import dataclass

import numpy as np
import torch

from training.metrics.distance import Features, classifier_features, distribution_distances, pca_features
from training.models.classifier import Classifier

PCA_COMPONENTS = 64  # the feature space for data without classes
FIT_IMAGES = 10_000  # training images the principal axes and the features' scale are fitted on


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


@dataclass
class Judge:
    """What scores samples: a classifier of the data's classes (None: the data has none, or none was given) for
    the Inception Score and label accuracy, and a feature space in which the samples' distance from real images is
    measured (the classifier's penultimate layer, else the pixels' principal components)."""

    classifier: Classifier | None
    features: Features
    real: np.ndarray  # the real images' features
    feature_space: str  # in words, for reports

    def score(self, images: torch.Tensor, labels: np.ndarray | None = None) -> dict[str, float]:
        metrics = {}
        if self.classifier is not None:
            probabilities = predict_probabilities(self.classifier, images).numpy()
            metrics = sample_quality(probabilities)
            if labels is not None:
                metrics["label_accuracy"] = label_accuracy(probabilities, labels)
        return metrics | distribution_distances(self.features(images), self.real)


def make_judge(classifier: Classifier | None, *, name: str, train: torch.Tensor, real: torch.Tensor) -> Judge:
    """A judge against the `real` images; without a classifier, in the principal components of `train` images'
    pixels. Either feature space is scaled so that the first FIT_IMAGES `train` images' features have a root mean
    square of 1 (over images and dimensions): the distances then do not depend on the scale of a classifier's
    layer, and KID's polynomial kernel sees inputs of order 1, as it does on Inception's features. `name` names the
    classifier in the report."""
    fit = train[:FIT_IMAGES]
    if classifier is not None:
        raw, space = classifier_features(classifier), f"the penultimate layer of {name}"
    else:
        raw = pca_features(fit, PCA_COMPONENTS)
        space = f"the first {PCA_COMPONENTS} principal components of the training images' pixels"
    scale = 1 / np.sqrt((raw(fit) ** 2).mean())

    def features(images: torch.Tensor) -> np.ndarray:
        return raw(images) * scale

    space += ", scaled to a root mean square of 1 on the training images"
    return Judge(classifier, features, features(real), space)
