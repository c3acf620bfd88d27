"""The model package contract: `exported_models/<id>/<version>/manifest.json`.

Training's exporter writes it, the service reads it: both import this one schema, so the two sides
cannot drift apart.
"""

import hashlib
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
# Model ids name folders of the repository: a letter or digit first (so never "." or ".."), no separator, no more
# than a file name may hold. The exporter, the registry and every front of the service check names by this one rule.
MODEL_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
ModelId = Annotated[str, StringConstraints(pattern=f"^{MODEL_ID_PATTERN}$")]
MODEL_ID_RULE = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or a digit"
# Versions are numeric folders; 18 digits keep every one an int64 (what Triton's protocol carries).
VERSION_PATTERN = r"[0-9]{1,18}"


def is_model_id(name: str) -> bool:
    return re.fullmatch(MODEL_ID_PATTERN, name) is not None


def parse_version(text: str) -> int | None:
    """A version as a request or a folder names it ("3"), or None when the text is not one."""
    return int(text) if re.fullmatch(VERSION_PATTERN, text) else None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorSpec(Strict):
    name: str
    dtype: Literal["float32", "int64"]
    shape: list[int]  # -1 marks the dynamic batch axis


class GraphSpec(Strict):
    file: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class PriorSpec(Strict):
    conditional: bool
    num_classes: int = Field(0, ge=0)
    # The prior also learnt "no label" (label dropout): its graphs take the label num_classes for it, and the
    # service sends that when a request gives no labels.
    labels_optional: bool = False
    # The defaults of a request that names no guidance or temperature, chosen on validation samples (the model
    # card's rule). Classifier-free guidance w for labelled samples (labels optional only; 0: none) ...
    guidance: float = Field(0.0, ge=0)
    temperature: float = Field(1.0, gt=0)  # ... and their temperature (every sample's, on an unconditional prior)
    # How a sample without a label is drawn (labels optional only): from the "no label" class, or from a class drawn
    # for each sample (contract.sampling.any_classes), then as a sample of that class, guidance included ...
    unlabelled: Literal["no_label", "any_class"] = "no_label"
    # ... with these chances, one per class (the classes' shares of the training images); None: uniformly
    class_frequencies: list[Annotated[float, Field(ge=0)]] | None = None
    # ... each seed's on its own ("independent"), or stratified over blocks of num_classes consecutive seeds, each
    # block holding every class once when uniform ("stratified"; contract.sampling.any_classes)
    class_draw: Literal["independent", "stratified"] = "independent"
    # The guidance (any_class) and temperature of samples without a label; None: the labelled samples' own
    unlabelled_guidance: float | None = Field(None, ge=0)
    unlabelled_temperature: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _frequencies(self) -> "PriorSpec":
        shares = self.class_frequencies
        if shares is not None and (len(shares) != self.num_classes or abs(sum(shares) - 1) > 1e-6):
            raise ValueError(f"class_frequencies must be {self.num_classes} chances that sum to 1")
        return self

    def default_guidance(self, *, labelled: bool) -> float:
        return self.guidance if labelled or self.unlabelled_guidance is None else self.unlabelled_guidance

    def default_temperature(self, *, labelled: bool) -> float:
        return self.temperature if labelled or self.unlabelled_temperature is None else self.unlabelled_temperature


class SizeFree(Strict):
    """A convolutional VQ-VAE's encoder and decoder take images of any height and width that are multiples of
    `stride`, and give code grids of (H / stride, W / stride). Large inputs run in tiles whose overlaps cover the
    receptive fields (contract/tiling.py), which gives exactly what one pass over the whole input gives."""

    stride: int = Field(ge=1)  # pixels per code on each side
    # The side, in pixels, of the square of pixels one code depends on: its own stride x stride cell in the middle
    encoder_receptive_field: int = Field(ge=1)
    # The side, in codes, of the square of codes that the pixels of one code's cell depend on: that code in the middle
    decoder_receptive_field: int = Field(ge=1)
    trained_size: tuple[int, int]  # (H, W) of the training images: image_shape's, where the prior's grid comes from

    @property
    def encoder_halo(self) -> int:
        """Pixels beyond a tile's own cells that its codes depend on, rounded up to whole codes."""
        reach = (self.encoder_receptive_field - self.stride + 1) // 2
        return -(-reach // self.stride) * self.stride

    @property
    def decoder_halo(self) -> int:
        """Codes beyond a tile's own codes that its pixels depend on."""
        return self.decoder_receptive_field // 2


class Provenance(Strict):
    dataset: str
    seed: int
    epochs: dict[str, int]  # per training stage
    seconds: dict[str, float]  # wall-clock training time per stage
    hardware: str
    commit: str
    created: str  # ISO 8601


class Manifest(Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: ModelId
    version: int = Field(ge=1)
    kind: Literal["vqvae", "vae"]
    description: str = ""
    image_shape: tuple[int, int, int]  # (C, H, W); float32 pixels in [0, 1], NCHW
    latent_shape: list[int]  # vqvae: (D, h, w); vae: (Z,)
    num_codes: int | None = Field(None, ge=1)  # K, vqvae only
    code_dim: int | None = Field(None, ge=1)  # D, vqvae only
    prior: PriorSpec | None = None
    likelihood: Literal["bernoulli", "gaussian"] | None = None  # vae: what the decoder's pixels are
    decoder_labels: int = Field(0, ge=0)  # vae: the decoder also takes a class label in [0, decoder_labels)
    graphs: dict[str, GraphSpec]  # encoder, decoder (+ prior, prior_row, prior_position for a vqvae)
    files: dict[str, str]  # every file of the package but the manifest -> sha256 hex digest
    opset: int = Field(ge=17)
    training: Provenance
    metrics: dict[str, float] = {}  # measured on the test split
    evaluation: str = ""  # how `metrics` were measured
    parity: dict[str, float] = {}  # max |torch - onnxruntime| per graph output, at export
    size_free: SizeFree | None = None  # vqvae: encoder and decoder take any multiple of the stride (else: one size)

    @property
    def no_label(self) -> int | None:
        """The label a VQ-VAE prior trained with label dropout reads as "no label" (its class count), else None."""
        prior = self.prior
        return prior.num_classes if self.kind == "vqvae" and prior and prior.labels_optional else None

    @model_validator(mode="after")
    def _complete(self) -> "Manifest":
        required = {"encoder", "decoder"} | ({"prior"} if self.prior else set())
        if missing := required - set(self.graphs):
            raise ValueError(f"graphs lack {sorted(missing)}")
        if missing := {g.file for g in self.graphs.values()} - set(self.files):
            raise ValueError(f"files lack the graphs' {sorted(missing)}")
        if self.kind == "vqvae":
            if self.num_codes is None or self.code_dim is None:
                raise ValueError("a vqvae manifest needs num_codes and code_dim")
            if "codebook.npy" not in self.files:
                raise ValueError("a vqvae package needs codebook.npy")
            if self.size_free and self.size_free.trained_size != tuple(self.image_shape[1:]):
                raise ValueError("size_free.trained_size must be the image shape's (H, W)")
            if self.size_free and any(side % self.size_free.stride for side in self.image_shape[1:]):
                raise ValueError("a size-free model's training size must be a multiple of its stride")
        elif self.likelihood is None or len(self.latent_shape) != 1:
            raise ValueError("a vae manifest needs its likelihood and a latent_shape of (Z,)")
        elif self.size_free:
            raise ValueError("only a vqvae is size-free: a VAE's latent is one vector per image")
        return self


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> Manifest:
    return Manifest.model_validate_json((folder / MANIFEST_FILE).read_text())


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Every file the manifest lists is inside the package folder and matches its sha256 (raises otherwise)."""
    for name, digest in manifest.files.items():
        path = folder / name
        if path.resolve().parent != folder.resolve():
            raise ValueError(f"file {name!r} lies outside the package")
        if not path.is_file():
            raise FileNotFoundError(f"missing file {name}")
        if sha256_file(path) != digest:
            raise ValueError(f"{name} does not match its sha256 in the manifest (corrupt or replaced)")
