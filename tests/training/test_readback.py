"""A VQ-VAE package read back as its checkpoints: the same codes, images and logits, and a new prior trains on it."""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from contract.manifest import read_manifest
from tests.conftest import DATA, TINY_PRIOR, TinyPipeline, run_options
from training.checkpoint import load_checkpoint, load_model
from training.data import load_dataset
from training.export.package import ExportOptions
from training.export.vqvae import export_vqvae
from training.prior import PriorOptions, train_prior


def autoencoders(tiny_pipeline: TinyPipeline) -> dict[str, tuple[Path, Path]]:
    """package name -> (package, the checkpoint it was exported from); the second has a rate weight."""
    return {
        "plain": (tiny_pipeline.package, tiny_pipeline.vqvae),
        "rate-weighted": (tiny_pipeline.unconditional_package, tiny_pipeline.root / "vqvae-rate" / "best.pt"),
    }


@pytest.mark.parametrize("name", ["plain", "rate-weighted"])
def test_a_package_rebuilds_its_autoencoder(tiny_pipeline: TinyPipeline, name: str) -> None:
    package, checkpoint = autoencoders(tiny_pipeline)[name]
    rebuilt, original = load_model(package, "vqvae"), load_model(checkpoint, "vqvae")
    assert rebuilt.config.rate_weight == pytest.approx(original.config.rate_weight, rel=1e-6)
    assert asdict(rebuilt.config) | {"rate_weight": 0} == asdict(original.config) | {"rate_weight": 0}
    images = load_dataset(DATA).val.images
    with torch.no_grad():
        (z_rebuilt, codes_rebuilt), (z_original, codes_original) = rebuilt.encode(images), original.encode(images)
        assert torch.equal(codes_rebuilt, codes_original)
        torch.testing.assert_close(z_rebuilt, z_original)
        torch.testing.assert_close(rebuilt.decode_codes(codes_rebuilt), original.decode_codes(codes_original))
    torch.testing.assert_close(rebuilt.quantizer.code_penalty(), original.quantizer.code_penalty(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["conditional", "moved-bias"])
def test_a_package_rebuilds_its_prior(tiny_pipeline: TinyPipeline, name: str) -> None:
    package, checkpoint = {
        "conditional": (tiny_pipeline.package, tiny_pipeline.prior),
        "moved-bias": (tiny_pipeline.unconditional_package, tiny_pipeline.root / "prior-uncond" / "best.pt"),
    }[name]
    rebuilt, original = load_model(package, "prior"), load_model(checkpoint, "prior")
    training_only = {"dropout": 0, "moved_bias": False}  # sampling never marks rows as moved
    assert asdict(rebuilt.config) | training_only == asdict(original.config) | training_only
    codes = torch.randint(0, rebuilt.config.num_codes, (6, 7, 7), generator=torch.Generator().manual_seed(0))
    labels = torch.arange(6) % rebuilt.config.num_classes if rebuilt.config.num_classes else None
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.logits(codes, labels), original.logits(codes, labels))


def test_a_package_reads_back_only_for_a_named_kind(tiny_pipeline: TinyPipeline) -> None:
    with pytest.raises(ValueError, match="only for a given kind"):
        load_checkpoint(tiny_pipeline.package)


def encoder(package: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(package / "encoder.onnx"), providers=["CPUExecutionProvider"])


def test_a_new_prior_trains_and_exports_on_a_package(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    package = tiny_pipeline.unconditional_package
    prior = train_prior(run_options(tmp_path / "prior", epochs=1), PriorOptions(vqvae=str(package)), TINY_PRIOR)
    new_package = export_vqvae(
        ExportOptions(vqvae=str(package), prior=str(prior), evaluation="", data=DATA, out=str(tmp_path), id="again")
    )
    images = load_dataset(DATA).val.images.numpy()
    (z_new, codes_new), (z_old, codes_old) = (
        encoder(folder).run(None, {"image": images}) for folder in (new_package, package)
    )
    assert (codes_new == codes_old).all()
    np.testing.assert_allclose(z_new, z_old, atol=1e-5)
    stage_one = read_manifest(package).training
    assert read_manifest(new_package).training.epochs["vqvae"] == stage_one.epochs["vqvae"]


def test_only_a_vqvae_package_stands_in_for_an_autoencoder(tiny_pipeline: TinyPipeline) -> None:
    with pytest.raises(ValueError, match="only a 'vqvae' package's"):
        load_model(tiny_pipeline.vae_package, "vqvae")
