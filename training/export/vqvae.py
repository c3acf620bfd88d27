"""A VQ-VAE and its prior as a model package: encoder.onnx, decoder.onnx, prior.onnx and the Fast PixelCNN step
graphs (prior_row, prior_position: the prior's own weights, stored once in shared_weights.bin), codebook.npy,
code_penalty.npy when codes carry a rate weight, samples.png."""

from pathlib import Path

import numpy as np
import torch
from torch import nn

from contract.images import png_bytes, tile
from contract.manifest import PriorSpec, SizeFree
from training.checkpoint import load_checkpoint, load_model
from training.data import image_shape
from training.export.package import (
    ExportOptions,
    GraphExample,
    npy_bytes,
    provenance,
    read_evaluation,
    validation_images,
    write_package,
)
from training.models.pixelcnn import PixelCNN
from training.models.pixelcnn_steps import PixelCNNPositionStep, PixelCNNRowStep, example_inputs
from training.models.receptive_field import (
    decoder_reach,
    decoder_receptive_field,
    encoder_reach,
    encoder_receptive_field,
)
from training.models.vq_vae import VQVAE

# The parity check's other sizes for a size-free encoder and decoder, as mosaics of validation images (rows, columns
# of images): one larger and square, one non-square.
MOSAICS = ((2, 2), (1, 3))


class EncoderGraph(nn.Module):
    def __init__(self, vqvae: VQVAE):
        super().__init__()
        self.vqvae = vqvae

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vqvae.encode(image)


class DecoderGraph(nn.Module):
    def __init__(self, vqvae: VQVAE):
        super().__init__()
        self.vqvae = vqvae

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.vqvae.decode(z_q)


class PriorGraph(nn.Module):
    def __init__(self, prior: PixelCNN):
        super().__init__()
        self.prior = prior

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.prior.logits(codes, labels)


def mosaic(images: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """rows x columns images side by side, as one image (1, C, rows * H, columns * W)."""
    chosen = images[torch.arange(rows * columns) % len(images)]
    grid = chosen.unflatten(0, (rows, columns))  # (rows, columns, C, H, W)
    return grid.permute(2, 0, 3, 1, 4).flatten(3, 4).flatten(1, 2)[None]


def size_free_examples(vqvae: VQVAE, images: torch.Tensor) -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    """The encoder's and the decoder's parity inputs at the other sizes (MOSAICS)."""
    encoder, decoder = [], []
    for rows, columns in MOSAICS:
        picture = mosaic(images, rows, columns)
        with torch.no_grad():
            z_q = vqvae.quantizer.lookup(vqvae.encode(picture).codes)
        encoder.append({"image": picture})
        decoder.append({"z_q": z_q})
    return tuple(encoder), tuple(decoder)


def size_free(vqvae: VQVAE) -> SizeFree:
    """The stride and receptive fields, derived from the layers (receptive_field.py)."""
    config = vqvae.config
    reach = encoder_reach(vqvae.encoder)
    return SizeFree(
        stride=reach.stride,
        encoder_receptive_field=encoder_receptive_field(reach),
        decoder_receptive_field=decoder_receptive_field(decoder_reach(vqvae.decoder)),
        trained_size=(config.image_height, config.image_width),
    )


def samples_picture(vqvae: VQVAE, prior: PixelCNN, images: torch.Tensor, seed: int) -> bytes:
    """Two rows of originals over their reconstructions, then four rows of prior samples."""
    labels = torch.arange(32) % prior.config.num_classes if prior.config.num_classes else None
    with torch.no_grad():
        reconstructions = vqvae.decode_codes(vqvae.encode(images[:16]).codes)
        samples = vqvae.decode_codes(prior.sample(32, labels=labels, generator=torch.Generator().manual_seed(seed)))
    rows = [images[:8], reconstructions[:8], images[8:16], reconstructions[8:16], samples]
    return png_bytes(tile(torch.cat(rows).numpy(), 8))


def sampling_defaults(sampling: dict, *, labels_optional: bool) -> dict:
    """The manifest's prior defaults from an evaluation's sampling settings (guidance and the settings of samples
    without a label only where labels are optional)."""
    if not labels_optional:
        return {"temperature": sampling.get("temperature", 1.0)}
    return {name: value for name, value in sampling.items() if value is not None}


def export_vqvae(options: ExportOptions) -> Path:
    vqvae: VQVAE = load_model(options.vqvae, "vqvae")
    prior: PixelCNN = load_model(options.prior, "prior")
    if (prior.config.num_codes, prior.config.grid) != (vqvae.config.num_codes, vqvae.config.grid):
        raise ValueError(f"{options.prior} models a different code grid than {options.vqvae}")
    config = vqvae.config
    evaluation = read_evaluation(options.evaluation)
    images, _ = validation_images(options, image_shape(config))
    with torch.no_grad():
        codes = vqvae.encode(images).codes
        z_q = vqvae.quantizer.lookup(codes)
    prior_inputs = {"codes": codes}
    if prior.config.num_classes:
        prior_inputs["labels"] = torch.arange(len(codes)) % prior.config.num_classes
    row_inputs, position_inputs = example_inputs(prior)
    encoder_sizes, decoder_sizes = size_free_examples(vqvae, images)
    graphs = {
        "encoder": GraphExample(EncoderGraph(vqvae), {"image": images}, ["z_e", "codes"], encoder_sizes),
        "decoder": GraphExample(DecoderGraph(vqvae), {"z_q": z_q}, ["image"], decoder_sizes),
        "prior": GraphExample(PriorGraph(prior), prior_inputs, ["logits"]),
        # Fast PixelCNN sampling: the same weights, one row / one position at a time with caches.
        "prior_row": GraphExample(PixelCNNRowStep(prior), row_inputs, ["v_row", "out_v_row"]),
        "prior_position": GraphExample(PixelCNNPositionStep(prior), position_inputs, ["logits", "h_here"]),
    }
    files = {
        "codebook.npy": npy_bytes(vqvae.quantizer.codebook.numpy().astype(np.float32)),
        "samples.png": samples_picture(vqvae, prior, images, options.seed),
    }
    if vqvae.quantizer.rate_weight:
        files["code_penalty.npy"] = npy_bytes(vqvae.quantizer.code_penalty().numpy().astype(np.float32))
    return write_package(
        options,
        graphs,
        files,
        evaluation,
        kind="vqvae",
        image_shape=image_shape(config),
        latent_shape=[config.code_dim, *config.grid],
        num_codes=config.num_codes,
        code_dim=config.code_dim,
        size_free=size_free(vqvae),
        prior=PriorSpec(
            conditional=prior.config.num_classes > 0,
            num_classes=prior.config.num_classes,
            labels_optional=prior.config.no_label is not None,
            # the settings the samples were evaluated with become the service's defaults
            **sampling_defaults(evaluation.get("sampling", {}), labels_optional=prior.config.no_label is not None),
        ),
        training=provenance(
            {
                kind: load_checkpoint(path, kind=kind)
                for kind, path in (("vqvae", options.vqvae), ("prior", options.prior))
            },
            options,
        ),
    )
