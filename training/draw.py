"""Prior samples drawn as the service draws them (sample i from seed + i, through the cached steps: about one
forward pass a grid, not h x w of them), at one setting of guidance and temperature."""

from dataclasses import dataclass

import numpy as np
import torch

from contract.sampling import any_classes, sample_codes_cached
from training.models.pixelcnn import PixelCNN
from training.models.pixelcnn_steps import torch_steps
from training.models.vq_vae import VQVAE

CHUNK = 250  # samples drawn at once
# How classes drawn for samples without a label are weighted: uniformly, or as often as among the training images
CLASS_DRAWS = ("uniform", "data")


@dataclass(frozen=True)
class Setting:
    """How samples are drawn: with labels cycling through the classes ("labelled"), each with a class drawn for it
    as the service draws one ("any_class": uniformly, or with `class_frequencies`; each seed's on its own, or
    `stratified` over blocks of consecutive seeds), as "no label" ("no_label"), or from an unconditional prior
    ("none")."""

    labels: str
    guidance: float = 0.0
    temperature: float = 1.0
    class_frequencies: tuple[float, ...] | None = None
    stratified: bool = False

    def __post_init__(self) -> None:
        if self.labels not in ("labelled", "any_class", "no_label", "none"):
            raise ValueError(f"labels are labelled, any_class, no_label or none, not {self.labels!r}")
        if self.guidance < 0 or not self.temperature > 0:
            raise ValueError(f"guidance must be >= 0 and temperature > 0, got {self.guidance}, {self.temperature}")
        if self.guidance and self.labels not in ("labelled", "any_class"):
            raise ValueError(f"guidance needs labels; {self.labels!r} samples have none")
        if (self.class_frequencies is not None or self.stratified) and self.labels != "any_class":
            raise ValueError(f"frequencies and strata are of drawn classes; {self.labels!r} samples draw none")

    @property
    def name(self) -> str:
        guided = f"-w{self.guidance:g}" if self.labels in ("labelled", "any_class") else ""
        weighted = "-data" if self.class_frequencies is not None else ""
        stratified = "-stratified" if self.stratified else ""
        return f"{self.labels}{weighted}{stratified}{guided}-t{self.temperature:g}"

    def class_labels(self, prior: PixelCNN, n: int, seed: int) -> np.ndarray | None:
        """The label of each of n samples, None for an unconditional prior."""
        classes = prior.config.num_classes
        if self.labels == "labelled":
            return np.arange(n) % classes
        if self.labels == "any_class":
            return any_classes(seed + np.arange(n), classes, self.class_frequencies, stratified=self.stratified)
        if self.labels == "no_label":
            return np.full(n, prior.config.no_label)
        return None


def class_frequencies(labels: np.ndarray, num_classes: int) -> tuple[float, ...]:
    """Each class's share of the known labels (-1: unknown) of the training images: the chances of a class drawn
    for a sample."""
    known = np.asarray(labels, np.int64)
    counts = np.bincount(known[known >= 0], minlength=num_classes)
    if len(counts) != num_classes or not counts.sum():
        raise ValueError(f"class frequencies need known labels, all in [0, {num_classes})")
    return tuple(float(c) for c in counts / counts.sum())


@torch.no_grad()
def prior_samples(
    vqvae: VQVAE, prior: PixelCNN, setting: Setting, *, n: int, seed: int
) -> tuple[torch.Tensor, np.ndarray | None]:
    """n decoded samples (on the CPU) at `setting`, and the class each was drawn as (None: no class)."""
    if n < 1:
        raise ValueError(f"the count of samples must be at least 1, got {n}")
    if setting.guidance and prior.config.no_label is None:
        raise ValueError("guidance needs a prior that learnt 'no label' (trained with --label-dropout)")
    if (setting.labels == "none") != (prior.config.num_classes == 0):
        raise ValueError(f"{setting.labels!r} samples do not suit a prior of {prior.config.num_classes} classes")
    prior.eval()
    device = next(prior.parameters()).device
    steps, (h, w) = torch_steps(prior, device), prior.config.grid
    labels = setting.class_labels(prior, n, seed)
    images = []
    for start in range(0, n, CHUNK):
        rows = np.arange(start, min(start + CHUNK, n))
        codes = sample_codes_cached(
            steps,
            np.zeros((len(rows), h, w), np.int64),
            np.ones((len(rows), h, w), bool),
            seed=seed + int(rows[0]),
            temperature=setting.temperature,
            labels=None if labels is None else labels[rows],
            guidance=setting.guidance,
            no_label=prior.config.no_label,
        )
        images.append(vqvae.decode_codes(torch.from_numpy(codes).to(next(vqvae.parameters()).device)).cpu())
    drawn_as = None if labels is None or setting.labels == "no_label" else labels
    return torch.cat(images), drawn_as
