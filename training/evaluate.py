"""`latentgen-train evaluate`: every figure of a VQ-VAE and its prior, or of a VAE (--vae), on the test
split, written as the JSON report that export puts into the manifest."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from contract.sampling import any_classes, sample_codes_cached
from training.checkpoint import load_checkpoint, load_model, upgrade_config
from training.data import DataOptions, ImageSet, Splits, image_shape, load_splits
from training.metrics.reconstruction import encode_codes, gaussian_bits, prior_nll, reconstruction_metrics
from training.metrics.samples import label_accuracy, predict_probabilities, sample_quality
from training.metrics.vae import (
    analogies,
    bits_per_dimension,
    fixed_evaluation_set,
    importance_sampled_nll,
    vae_statistics,
)
from training.models.classifier import Classifier, ClassifierConfig
from training.models.pixelcnn import PixelCNN
from training.models.pixelcnn_steps import torch_steps
from training.models.vae import VAE
from training.models.vq_vae import VQVAE
from training.run import pick_device


@dataclass
class EvaluateOptions(DataOptions):
    vqvae: str = "runs/vqvae/best.pt"
    prior: str = "runs/prior/best.pt"
    # A classifier of the dataset's classes scores the samples (MNIST: training/weights/mnist-classifier.pt);
    # without one the sample score is skipped, and the report says so.
    classifier: str = ""
    samples: int = 1000  # prior samples scored by the classifier
    analogies: int = 100  # images of the measured split drawn as every class (a class-conditional VAE)
    vae: str = ""  # evaluate this VAE checkpoint instead of a VQ-VAE and its prior
    importance_samples: int = 5000  # k for the VAE's importance-sampled NLL
    images: int = 0  # measure only the first N images of the split (0: all of them); the report says how many
    temperature: float = 1.0
    # Classifier-free guidance w of the labelled samples (a prior that learnt "no label"; contract/sampling.py)
    guidance: float = 0.0
    # no_label | any_class: how samples without a label are drawn (contract.manifest.PriorSpec.unlabelled); export
    # gives the package the guidance and the mode it was evaluated with
    unlabelled: str = "no_label"
    seed: int = 0
    device: str = "auto"
    out: str = "runs/evaluation.json"
    # test | validation: choose between runs on the validation split; report the test split
    on: str = "test"

    def measured(self, splits: Splits) -> ImageSet:
        """The split these options measure."""
        if self.on not in ("test", "validation"):
            raise ValueError(f"--on takes test or validation, got {self.on!r}")
        if self.images < 0:
            raise ValueError(f"--images takes a count of images (0: all of them), got {self.images}")
        split = self.whole_split(splits)
        return ImageSet(split.images[: self.images], split.labels[: self.images]) if self.images else split

    def whole_split(self, splits: Splits) -> ImageSet:
        return splits.test if self.on == "test" else splits.val

    def described(self, measured: ImageSet, splits: Splits) -> str:
        """How many images were measured, for the report's method: "10000 test" or "first 1000 of 10000 test"."""
        whole = len(self.whole_split(splits))
        return f"{whole} {self.on}" if len(measured) == whole else f"first {len(measured)} of {whole} {self.on}"


EVALUATION_METHOD = (
    "`latentgen-train evaluate` on the {images} images ({split}); bits_per_dim: the prior's bits for the "
    "image's codes plus -log2 p(x | codes) under a Gaussian decoder whose variance is the validation MSE, on "
    "uniformly dequantized 8-bit pixels, per dimension; {score}"
)
SCORE_METHOD = (
    "sample quality: Inception Score (Salimans et al. 2016, one split) of {n} {conditioning} prior samples at "
    "temperature {t} (drawn as the service draws them, sample i from seed {seed} + i), computed with {classifier} "
    "(test accuracy {acc:.4f}) in place of Inception; "
    "confident_fraction = share of samples the classifier assigns a class with probability >= 0.9"
)
LABEL_METHOD = "; label_accuracy = share of the class-conditional samples the classifier assigns to their label"
GUIDANCE_METHOD = ", drawn with classifier-free guidance w = {w} (Ho & Salimans 2021)"
ANY_CLASS_METHOD = " (each with a class drawn uniformly first, then drawn as that class is, guidance included)"
UNLABELLED_METHOD = "; unconditional_*: the same figures for {n} samples drawn without a label, on the same seeds"
ANALOGY_METHOD = (
    "; analogy_accuracy: the posterior means of the first {n} {on} images (grey levels, as a client sends them), "
    "each decoded as every class, and the share of those {images} images that {classifier} (test accuracy "
    "{acc:.4f}) assigns to the requested class"
)


def classifier_mismatch(options: EvaluateOptions, state: dict | None, shape: tuple, classes: int) -> str:
    """Why the sample score cannot be computed ("" when it can)."""
    if state is None:
        return "no classifier was given (--classifier), so the sample score was skipped"
    config = ClassifierConfig(**upgrade_config(state["config"]))
    if image_shape(config) != shape:
        return f"{options.classifier} takes {image_shape(config)} images, the model makes {shape}"
    if classes and config.num_classes != classes:
        return f"{options.classifier} knows {config.num_classes} classes, the data has {classes}"
    return ""


def evaluate_vqvae(options: EvaluateOptions) -> dict:
    """Every figure on the test split (or --on validation); writes them to `options.out` as JSON and returns them."""
    device = pick_device(options.device)
    vqvae: VQVAE = load_model(options.vqvae, "vqvae", device)
    prior: PixelCNN = load_model(options.prior, "prior", device)
    shape = image_shape(vqvae.config)
    splits = load_splits(options, options.seed, shape)
    test = options.measured(splits)
    report = {
        "split": options.on,
        "images": len(test),
        "metrics": code_metrics(vqvae, prior, splits, test, device),
        "vqvae": options.vqvae,
        "prior": options.prior,
        "data": splits.name,
        "data_split": splits.split,
    }
    classifier_state = load_checkpoint(options.classifier) if options.classifier else None
    skipped = classifier_mismatch(options, classifier_state, shape, prior.config.num_classes)
    if skipped:
        report["sample_score"] = score = f"skipped: {skipped}"
    else:
        check_sampling_options(options, prior)
        classifier: Classifier = load_model(options.classifier, "classifier", device)
        report["metrics"] |= sample_metrics(vqvae, prior, classifier, options, device)
        report["reference"] = {
            "real_test_inception_score": real_inception_score(classifier, test),
            "classifier_test_accuracy": classifier_state["test_accuracy"],
        }
        if prior.config.no_label is not None:
            report["guidance"], report["unlabelled"] = options.guidance, options.unlabelled
        score = score_method(options, prior, classifier_state["test_accuracy"])
    report["method"] = EVALUATION_METHOD.format(images=options.described(test, splits), split=splits.split, score=score)
    return write_report(report, options.out)


def code_metrics(vqvae: VQVAE, prior: PixelCNN, splits: Splits, test: ImageSet, device: torch.device) -> dict:
    """Reconstruction error, the prior's bits per code of the encoder's codes, and bits per dimension."""
    metrics = reconstruction_metrics(vqvae, test, device)
    nll = prior_nll(prior, ImageSet(encode_codes(vqvae, test, device), test.labels), device)
    grid_codes, pixels = math.prod(vqvae.config.grid), math.prod(image_shape(vqvae.config))
    variance = reconstruction_metrics(vqvae, splits.val, device)["mse"] + 1 / (12 * 256**2)  # + dequantization
    image_bits = nll["bits_per_code"] * grid_codes + gaussian_bits(vqvae, test, variance, device)
    return (
        metrics
        | nll
        | {"bits_per_pixel": nll["bits_per_code"] * grid_codes / pixels, "bits_per_dim": image_bits / pixels}
    )


def check_sampling_options(options: EvaluateOptions, prior: PixelCNN) -> None:
    if options.guidance and prior.config.no_label is None:
        raise ValueError("--guidance needs a prior that learnt 'no label' (trained with --label-dropout)")
    if options.unlabelled not in ("no_label", "any_class"):
        raise ValueError(f"--unlabelled is no_label or any_class, not {options.unlabelled!r}")


def sample_metrics(
    vqvae: VQVAE, prior: PixelCNN, classifier: Classifier, options: EvaluateOptions, device: torch.device
) -> dict:
    """The classifier's judgement of prior samples: labelled ones cycling through the classes (label accuracy too)
    for a conditional prior, and, where labels are optional, the same figures for samples drawn without one."""
    classes = prior.config.num_classes
    labels = torch.arange(options.samples, device=device) % classes if classes else None
    probabilities = predict_probabilities(classifier, prior_samples(vqvae, prior, options, labels)).numpy()
    metrics = sample_quality(probabilities)
    if labels is not None:
        metrics["label_accuracy"] = label_accuracy(probabilities, labels.cpu().numpy())
    if prior.config.no_label is not None:
        if options.unlabelled == "any_class":
            unlabelled = torch.from_numpy(any_classes(options.seed + np.arange(options.samples), classes)).to(device)
        else:
            unlabelled = torch.full((options.samples,), prior.config.no_label, device=device)
        drawn = predict_probabilities(classifier, prior_samples(vqvae, prior, options, unlabelled)).numpy()
        metrics |= {f"unconditional_{name}": value for name, value in sample_quality(drawn).items()}
    return metrics


def real_inception_score(classifier: Classifier, images: ImageSet) -> float:
    return sample_quality(predict_probabilities(classifier, images.images).numpy())["inception_score"]


def score_method(options: EvaluateOptions, prior: PixelCNN, classifier_accuracy: float) -> str:
    """The report's words for how the samples were scored."""
    labelled = prior.config.num_classes > 0
    score = SCORE_METHOD.format(
        n=options.samples,
        conditioning="class-conditional (labels cycling through the classes)" if labelled else "unconditional",
        t=options.temperature,
        seed=options.seed,
        classifier=options.classifier,
        acc=classifier_accuracy,
    )
    if labelled:
        score += LABEL_METHOD + (GUIDANCE_METHOD.format(w=options.guidance) if options.guidance else "")
    if prior.config.no_label is not None:
        score += UNLABELLED_METHOD.format(n=options.samples)
        score += ANY_CLASS_METHOD if options.unlabelled == "any_class" else ""
    return score


@torch.no_grad()
def prior_samples(vqvae: VQVAE, prior: PixelCNN, options: EvaluateOptions, labels: torch.Tensor | None) -> torch.Tensor:
    """`options.samples` decoded prior samples (as class `labels` where given), drawn as the service draws them:
    sample i from seed + i, through the cached steps (about one forward pass a grid, not h x w of them)."""
    prior.eval()
    steps, (h, w) = torch_steps(prior, next(prior.parameters()).device), prior.config.grid
    images = []
    for chunk in torch.arange(options.samples).split(250):
        codes = sample_codes_cached(
            steps,
            np.zeros((len(chunk), h, w), np.int64),
            np.ones((len(chunk), h, w), bool),
            seed=options.seed + int(chunk[0]),
            temperature=options.temperature,
            labels=None if labels is None else labels[chunk].cpu().numpy(),
            guidance=options.guidance,
            no_label=prior.config.no_label,
        )
        images.append(vqvae.decode_codes(torch.from_numpy(codes).to(next(vqvae.parameters()).device)).cpu())
    return torch.cat(images)


def write_report(report: dict, out: str) -> dict:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2))
    return report


NLL_METHOD = (
    "`python -m training evaluate --vae` on the {images} images, {data}; NLL: importance sampling with "
    "k = {k} samples per image from q(z|x) (Burda et al. 2015); ELBO, KL and active units (Cov_x E[z_u|x] > 0.01) "
    "from one posterior sample per image"
)


def evaluate_vae(options: EvaluateOptions) -> dict:
    """Test-split (or --on validation) NLL, ELBO, KL and active units; written to `options.out` as JSON and returned."""
    device = pick_device(options.device)
    model: VAE = load_model(options.vae, "vae", device)
    splits = load_splits(options, options.seed, model.config.image_shape)
    measured = options.measured(splits)
    test = fixed_evaluation_set(model, measured, seed=options.seed)
    statistics = vae_statistics(model, test, device)
    metrics = statistics.as_metrics() | {"nll": importance_sampled_nll(model, test, device, options.importance_samples)}
    described = (
        "binarized once with a fixed seed" if model.config.likelihood == "bernoulli" else "uniformly dequantized"
    )
    if model.config.likelihood == "gaussian":
        metrics["bits_per_dim"] = bits_per_dimension(metrics["nll"], model.config.pixels)
    report = {
        "split": options.on,
        "images": len(test),
        "metrics": metrics,
        "kl_per_dimension": statistics.kl_per_dimension,
        "activity_per_dimension": statistics.activity_per_dimension,
        "method": NLL_METHOD.format(
            images=options.described(measured, splits), data=described, k=options.importance_samples
        ),
        "vae": options.vae,
        "data": splits.name,
    }
    if model.config.num_classes:
        score_analogies(model, measured, options, report, device)
    return write_report(report, options.out)


def score_analogies(model: VAE, split: ImageSet, options: EvaluateOptions, report: dict, device: torch.device) -> None:
    """A class-conditional VAE's analogies, scored by the classifier, into `report` (or the reason they were not)."""
    state = load_checkpoint(options.classifier) if options.classifier else None
    skipped = classifier_mismatch(options, state, model.config.image_shape, model.config.num_classes)
    if skipped:
        report["analogy_score"] = f"skipped: {skipped}"
        return
    classifier: Classifier = load_model(options.classifier, "classifier", device)
    images, labels = analogies(model, split.images[: options.analogies], device)
    probabilities = predict_probabilities(classifier, images).numpy()
    report["metrics"]["analogy_accuracy"] = label_accuracy(probabilities, labels.numpy())
    report["method"] += ANALOGY_METHOD.format(
        n=min(options.analogies, len(split)),
        on=options.on,
        images=len(images),
        classifier=options.classifier,
        acc=state["test_accuracy"],
    )
