"""Train the digit classifier that scores samples (`python -m training classifier ...`).

Selected on the validation split; its test accuracy is measured once at the end and stored in
the checkpoint, so that every sample-quality figure can say how good its judge is.
"""

from dataclasses import asdict, replace
from pathlib import Path

import torch

from training.checkpoint import load_checkpoint, load_model
from training.data import ImageSet, load_dataset
from training.evaluate import predict_probabilities
from training.models.classifier import Classifier, ClassifierConfig
from training.run import Run, RunOptions
from training.train import make_optimizer, train_epoch


def accuracy(classifier: Classifier, images: ImageSet) -> float:
    predictions = predict_probabilities(classifier, images.images).argmax(1)
    return (predictions == images.labels).float().mean().item()


def classifier_loss(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return model(images, labels)[1]


def train_classifier(options: RunOptions, config: ClassifierConfig) -> Path:
    run = Run(options)
    splits = load_dataset(options.data, config.image_size, config.image_channels, seed=options.seed)
    channels, size, _ = splits.image_shape
    config = replace(config, image_channels=channels, image_size=size, num_classes=splits.num_classes)
    model = Classifier(config).to(run.device)
    optimizer = make_optimizer(model, options)
    best_accuracy = -1.0
    for epoch in range(options.epochs):
        train_loss = train_epoch(model, optimizer, run, splits.train, epoch, classifier_loss)
        val_accuracy = accuracy(model, splits.val)
        run.log({"epoch": epoch + 1, "train_loss": train_loss, "val_accuracy": val_accuracy})
        if val_accuracy > best_accuracy:
            best_accuracy = val_accuracy
            state = {
                "kind": "classifier",
                "config": asdict(config),
                "model": model.state_dict(),
                "epoch": epoch + 1,
                "data": splits.name,
            }
            run.save("best.pt", state)
    # The test split is read once, by the selected model, after training is over.
    state = load_checkpoint(run.out / "best.pt")
    state["val_accuracy"] = best_accuracy
    state["test_accuracy"] = accuracy(load_model(run.out / "best.pt", "classifier", run.device), splits.test)
    run.log({"test_accuracy": state["test_accuracy"], "val_accuracy": best_accuracy})
    return run.save("best.pt", state)
