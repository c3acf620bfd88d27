"""Train the classifier that scores samples (`python -m training classifier ...`).

Selected on the validation split; its test accuracy is measured once at the end and stored in
the checkpoint, so that every sample-quality figure can say how good its judge is.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from training.augment import mirror_half
from training.checkpoint import load_checkpoint, load_model
from training.data import ImageSet, load_splits
from training.loop import fit
from training.metrics.samples import predict_probabilities
from training.models.classifier import Classifier, ClassifierConfig
from training.run import Run, RunOptions


def accuracy(classifier: Classifier, images: ImageSet) -> float:
    predictions = predict_probabilities(classifier, images.images).argmax(1)
    return (predictions == images.labels).float().mean().item()


@dataclass
class ClassifierOptions:
    hflip: bool = False  # mirror half of each batch left to right (photos, not digits)


def classifier_loss(model: Classifier, images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
    return model(images, labels).loss


def mirrored_loss(model: Classifier, images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
    return model(mirror_half(images), labels).loss


def train_classifier(
    options: RunOptions, config: ClassifierConfig, classifier_options: ClassifierOptions | None = None
) -> Path:
    """best.pt has the lowest validation error; its test accuracy is added once training is over."""
    run = Run(options)
    splits = load_splits(options, options.seed)
    channels, height, width = splits.image_shape
    config = replace(
        config, image_channels=channels, image_height=height, image_width=width, num_classes=splits.num_classes
    )
    model = Classifier(config).to(run.device)

    def validate() -> dict[str, float]:
        return {"error": 1 - accuracy(model, splits.val)}

    loss = mirrored_loss if classifier_options and classifier_options.hflip else classifier_loss
    best = fit(run, model, splits.train, loss, validate, select="error", kind="classifier", data=splits.name)
    # The test split is read once, by the selected model, after training is over.
    state = load_checkpoint(best)
    state["val_accuracy"] = 1 - state["val"]["error"]
    state["test_accuracy"] = accuracy(load_model(best, "classifier", run.device), splits.test)
    run.log({"test_accuracy": state["test_accuracy"], "val_accuracy": state["val_accuracy"]})
    return run.save("best.pt", state)
