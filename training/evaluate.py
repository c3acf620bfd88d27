"""`latentgen-train evaluate`: every figure of a VQ-VAE and its prior, or of a VAE (--vae), on the test
split, written as the JSON report that export puts into the manifest."""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.checkpoint import load_checkpoint, load_model, upgrade_config
from training.data import DataOptions, ImageSet, Splits, image_shape, load_splits
from training.draw import CLASS_DRAWS, Setting, class_frequencies, prior_samples
from training.metrics.distance import distribution_distances
from training.metrics.reconstruction import encode_codes, gaussian_bits, prior_nll, reconstruction_metrics
from training.metrics.samples import Judge, label_accuracy, make_judge, predict_probabilities, sample_quality
from training.metrics.vae import (
    analogies,
    bits_per_dimension,
    fixed_evaluation_set,
    importance_sampled_nll,
    vae_statistics,
)
from training.models.classifier import Classifier, ClassifierConfig
from training.models.pixelcnn import PixelCNN
from training.models.vae import VAE
from training.models.vq_vae import VQVAE
from training.run import pick_device


@dataclass
class EvaluateOptions(DataOptions):
    vqvae: str = "runs/vqvae/best.pt"
    prior: str = "runs/prior/best.pt"
    # A classifier of the dataset's classes scores the samples (MNIST: training/weights/mnist-classifier.pt) and
    # gives the features their distance from real images is measured in; without one the Inception Score and label
    # accuracy are skipped and the distances are measured in the pixels' principal components, and the report says so.
    classifier: str = ""
    samples: int = 5000  # prior samples drawn for each way of drawing them
    analogies: int = 100  # images of the measured split drawn as every class (a class-conditional VAE)
    vae: str = ""  # evaluate this VAE checkpoint instead of a VQ-VAE and its prior
    importance_samples: int = 5000  # k for the VAE's importance-sampled NLL
    images: int = 0  # measure only the first N images of the split (0: all of them); the report says how many
    # The settings of labelled samples (every sample's, for an unconditional prior): temperature and, on a prior
    # that learnt "no label", classifier-free guidance w (contract/sampling.py) ...
    temperature: float = 1.0
    guidance: float = 0.0
    # ... how samples without a label are drawn, no_label | any_class (contract.manifest.PriorSpec.unlabelled) ...
    unlabelled: str = "no_label"
    # ... with classes drawn (any_class) uniformly or as often as among the training images (uniform | data) ...
    unlabelled_classes: str = "uniform"
    # ... each sample's class on its own or stratified over blocks of consecutive seeds (independent | stratified) ...
    class_draw: str = "independent"
    # ... and their guidance (any_class) and temperature; unset: the labelled samples' own
    unlabelled_guidance: float | None = None
    unlabelled_temperature: float | None = None
    # A sweep's report (latentgen-train sweep): its chosen defaults replace the six settings above. Export gives
    # the package the settings it was evaluated with, as the service's defaults.
    defaults: str = ""
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

    def sampling(self, train: ImageSet, num_classes: int) -> dict:
        """The sampling settings, a sweep's choice where --defaults names one, as the package's manifest states
        them (contract.manifest.PriorSpec): the classes' chances where drawn as often as among `train`'s images."""
        chosen = json.loads(Path(self.defaults).read_text())["chosen"] if self.defaults else {}
        names = ("guidance", "temperature", "unlabelled", "unlabelled_guidance", "unlabelled_temperature")
        sampling = {name: chosen.get(name, getattr(self, name)) for name in names}
        classes = chosen.get("unlabelled_classes", self.unlabelled_classes)
        if classes not in CLASS_DRAWS:
            raise ValueError(f"--unlabelled-classes is uniform or data, not {classes!r}")
        draw = chosen.get("class_draw", self.class_draw)
        if draw not in ("independent", "stratified"):
            raise ValueError(f"--class-draw is independent or stratified, not {draw!r}")
        drawn = sampling["unlabelled"] == "any_class" and num_classes > 0
        chances = list(class_frequencies(train.labels, num_classes)) if drawn and classes == "data" else None
        return sampling | {"class_frequencies": chances, "class_draw": draw if drawn else None}


EVALUATION_METHOD = (
    "`latentgen-train evaluate` on the {images} images ({split}); bits_per_dim: the prior's bits for the "
    "image's codes plus -log2 p(x | codes) under a Gaussian decoder whose variance is the validation MSE, on "
    "uniformly dequantized 8-bit pixels, per dimension; {score}"
)
SAMPLES_METHOD = (
    "samples: {n} {conditioning} prior samples ({drawn}), drawn as the service draws them (sample i from seed "
    "{seed} + i); frechet_distance (Heusel et al. 2017) and kid (the unbiased squared MMD with the cubic polynomial "
    "kernel, Bińkowski et al. 2018, over every pair; kid_std: its standard deviation over kid_blocks disjoint "
    "blocks of 1,000) between the samples and the real images ({images}), in the features of {space}; reference: "
    "the same distances between two random halves of the real images"
)
SCORE_METHOD = (
    "; inception_score: the Inception Score (Salimans et al. 2016, one split) computed with {classifier} (test "
    "accuracy {acc:.4f}, a project classifier) in place of Inception; confident_fraction = share of samples the "
    "classifier assigns a class with probability >= 0.9"
)
SKIPPED_METHOD = "; the Inception Score and label accuracy skipped: {why}"
LABEL_METHOD = "; label_accuracy = share of the class-conditional samples the classifier assigns to their label"
UNLABELLED_METHOD = "; unconditional_*: the same figures for {n} samples drawn without a label ({drawn}), same seeds"
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
    sampling = options.sampling(splits.train, prior.config.num_classes)
    report = {
        "split": options.on,
        "images": len(test),
        "metrics": code_metrics(vqvae, prior, splits, test, device),
        "vqvae": options.vqvae,
        "prior": options.prior,
        "data": splits.name,
        "data_split": splits.split,
        "sampling": sampling,
    }
    judge, classifier_state = sample_judge(options, shape, prior.config.num_classes, splits, test, device)
    draws = sample_settings(prior, sampling)
    report["metrics"] |= sample_metrics(vqvae, prior, judge, draws, n=options.samples, seed=options.seed)
    halves = halves_distance(judge)
    report["metrics"] |= {f"real_halves_{name}": value for name, value in halves.items() if name != "kid_blocks"}
    report["reference"] = {"real_halves": halves}
    if judge.classifier is not None:
        report["reference"] |= {
            "real_inception_score": real_inception_score(judge.classifier, test),
            "classifier_test_accuracy": classifier_state["test_accuracy"],
        }
    score = score_method(options, judge, draws, classifier_state, test=options.described(test, splits))
    report["method"] = EVALUATION_METHOD.format(images=options.described(test, splits), split=splits.split, score=score)
    return write_report(report, options.out)


def sample_judge(
    options: EvaluateOptions | Any, shape: tuple, classes: int, splits: Splits, real: ImageSet, device: torch.device
) -> tuple[Judge, dict | None]:
    """The judge of the samples against `real` images (with the classifier's checkpoint, when one was given), for
    any options with a `classifier` path (evaluate's and the sweep's)."""
    state = load_checkpoint(options.classifier) if options.classifier else None
    mismatch = classifier_mismatch(options, state, shape, classes)
    if state is not None and mismatch:
        raise ValueError(mismatch)
    classifier = load_model(options.classifier, "classifier", device) if state is not None else None
    return make_judge(classifier, name=options.classifier, train=splits.train.images, real=real.images), state


def sample_settings(prior: PixelCNN, sampling: dict) -> dict[str, Setting]:
    """How the evaluated samples are drawn: "labelled" (or, for an unconditional prior, every sample) and, where
    labels are optional, "unlabelled" as the service draws a sample without a label: with the unlabelled settings,
    or where they are unset the labelled ones (contract.manifest.PriorSpec's defaults, whose pydantic a training
    machine may lack)."""
    if sampling["unlabelled"] not in ("no_label", "any_class"):
        raise ValueError(f"--unlabelled is no_label or any_class, not {sampling['unlabelled']!r}")
    guidance, temperature = sampling["guidance"], sampling["temperature"]
    if not prior.config.num_classes:
        return {"labelled": Setting("none", temperature=temperature)}
    draws = {"labelled": Setting("labelled", guidance, temperature)}
    if prior.config.no_label is not None:
        mode = sampling["unlabelled"]
        unlabelled_guidance = guidance if sampling["unlabelled_guidance"] is None else sampling["unlabelled_guidance"]
        unlabelled_temperature = sampling["unlabelled_temperature"] or temperature
        chances = tuple(sampling["class_frequencies"]) if sampling["class_frequencies"] else None  # any_class only
        guided = unlabelled_guidance if mode == "any_class" else 0.0
        stratified = sampling["class_draw"] == "stratified"
        draws["unlabelled"] = Setting(mode, guided, unlabelled_temperature, chances, stratified)
    return draws


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


def sample_metrics(
    vqvae: VQVAE, prior: PixelCNN, judge: Judge, draws: dict[str, Setting], *, n: int, seed: int
) -> dict[str, float]:
    """The judge's figures for the samples of each way of drawing them; those without a label as unconditional_*."""
    metrics = {}
    for name, setting in draws.items():
        images, labels = prior_samples(vqvae, prior, setting, n=n, seed=seed)
        scored = judge.score(images, labels if setting.labels == "labelled" else None)
        metrics |= scored if name == "labelled" else {f"unconditional_{key}": value for key, value in scored.items()}
    return metrics


def halves_distance(judge: Judge) -> dict[str, float]:
    """The distances between two halves of the real images drawn at random (seeded): what a perfect sampler's
    figures would be near, at half the count. Not the first and second halves, nor even and odd positions: MNIST's
    files are ordered by writer in ways that make those differ (docs/experiments/2026-12-07-sampling-defaults.md)."""
    order = np.random.default_rng(0).permutation(len(judge.real))
    half = len(order) // 2
    return distribution_distances(judge.real[order[:half]], judge.real[order[half : 2 * half]])


def real_inception_score(classifier: Classifier, images: ImageSet) -> float:
    return sample_quality(predict_probabilities(classifier, images.images).numpy())["inception_score"]


def score_method(
    options: EvaluateOptions, judge: Judge, draws: dict[str, Setting], classifier_state: dict | None, *, test: str
) -> str:
    """The report's words for how the samples were drawn and scored."""
    labelled = draws["labelled"]
    score = SAMPLES_METHOD.format(
        n=options.samples,
        conditioning="unconditional"
        if labelled.labels == "none"
        else "class-conditional (labels cycling through the classes)",
        drawn=described(labelled),
        seed=options.seed,
        images=test,
        space=judge.feature_space,
    )
    if judge.classifier is None:
        score += SKIPPED_METHOD.format(why="no classifier was given (--classifier)")
    else:
        score += SCORE_METHOD.format(classifier=options.classifier, acc=classifier_state["test_accuracy"])
        score += LABEL_METHOD if labelled.labels == "labelled" else ""
    if "unlabelled" in draws:
        score += UNLABELLED_METHOD.format(n=options.samples, drawn=described(draws["unlabelled"]))
    return score


def described(setting: Setting) -> str:
    """A way of drawing samples, in words."""
    words = {
        "labelled": "each as its label",
        "any_class": "each with a class drawn {}{} first, then drawn as that class".format(
            "uniformly" if setting.class_frequencies is None else "as often as among the training images",
            " (stratified over blocks of as many consecutive seeds as classes)" if setting.stratified else "",
        ),
        "no_label": "as 'no label'",
        "none": "",
    }[setting.labels]
    guided = f", classifier-free guidance w = {setting.guidance:g} (Ho & Salimans 2021)" if setting.guidance else ""
    return ", ".join(part for part in (words, f"temperature {setting.temperature:g}") if part) + guided


def write_report(report: dict, out: str | Path) -> dict:
    """Written whole, then renamed over any old one: a run killed while writing leaves the previous report."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(report, indent=2))
    partial.replace(path)
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
