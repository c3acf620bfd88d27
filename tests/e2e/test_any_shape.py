"""Any image shape, end to end: synthetic data of three shapes (grey 28x20, RGB 32x32, RGB 40x48) through
train -> evaluate -> export -> a real server -> the Python client, and every `?resize=` mode on photos of
other sizes and colours."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client import Client, InvalidInputError
from tests.conftest import TINY_PRIOR, TINY_VQVAE
from tools.local_server import serving
from training.evaluate import EvaluateOptions, evaluate_vqvae
from training.export.package import ExportOptions
from training.export.vae import export_vae
from training.export.vqvae import export_vqvae
from training.models.vae import VAEConfig
from training.prior import PriorOptions, train_prior
from training.run import RunOptions
from training.vae import VAEOptions, train_vae
from training.vqvae import train_vqvae

SHAPES = {"g28x20": (1, 28, 20), "c32x32": (3, 32, 32), "c40x48": (3, 40, 48)}
TINY_CONV_VAE = VAEConfig(architecture="conv", likelihood="gaussian", latent_dim=3, channels=4)


def options(data: str, out: Path) -> RunOptions:
    return RunOptions(data=data, out=str(out), epochs=1, batch_size=32, lr=3e-3, warmup_steps=2)


@pytest.fixture(scope="module")
def shaped_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    models = root / "models"
    for name, (c, h, w) in SHAPES.items():
        data = f"synthetic:96:{c}x{h}x{w}"
        vqvae = train_vqvae(options(data, root / name / "vqvae"), TINY_VQVAE)
        prior_options = PriorOptions(vqvae=str(vqvae), conditional=name == "c32x32")
        prior = train_prior(options(data, root / name / "prior"), prior_options, TINY_PRIOR)
        report = root / name / "evaluation.json"
        evaluate_vqvae(EvaluateOptions(data=data, vqvae=str(vqvae), prior=str(prior), samples=8, out=str(report)))
        export_vqvae(
            ExportOptions(
                data=data, vqvae=str(vqvae), prior=str(prior), evaluation=str(report), out=str(models), id=name
            )
        )
        vae = train_vae(options(data, root / name / "vae"), VAEOptions(), TINY_CONV_VAE)
        export_vae(ExportOptions(data=data, vae=str(vae), out=str(models), id=f"vae-{name}"))
    return models


def picture(width: int, height: int, mode: str = "RGB", seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_evaluation_without_a_classifier_skips_the_sample_score_and_says_why(shaped_models: Path) -> None:
    manifest = json.loads((shaped_models / "g28x20" / "1" / "manifest.json").read_text())
    assert "skipped: no classifier was given" in manifest["evaluation"]
    assert {"mse", "psnr", "bits_per_code", "bits_per_dim", "perplexity"} <= set(manifest["metrics"])
    assert "inception_score" not in manifest["metrics"]
    vae_manifest = json.loads((shaped_models / "vae-g28x20" / "1" / "manifest.json").read_text())
    assert vae_manifest["evaluation"].startswith("not evaluated")


@pytest.fixture(scope="module")
def client(shaped_models: Path):
    with serving(MODELS_DIR=shaped_models, LOG_LEVEL="warning") as (url, _), Client(url) as connected:
        yield connected


@pytest.mark.parametrize("name", SHAPES)
def test_every_shape_serves_every_operation_through_the_client(client: Client, name: str) -> None:
    c, h, w = SHAPES[name]
    info = client.model(name)
    assert info["manifest"]["image_shape"] == [c, h, w] and info["manifest"]["latent_shape"][1:] == [h // 4, w // 4]
    exact = Image.open(io.BytesIO(picture(w, h, "RGB" if c == 3 else "L")))
    codes = client.encode(name, [exact, exact]).codes
    assert codes.shape == (2, h // 4, w // 4)
    decoded = client.decode(name, codes=codes)
    assert decoded.images[0].size == (w, h) and decoded.pixels.shape == (2, c, h, w)
    labels = [3] if name == "c32x32" else None  # its prior is class-conditional
    sampled = client.sample(name, n=3, seed=1, labels=labels)
    assert sampled.codes.shape == (3, h // 4, w // 4) and sampled.pixels.shape == (3, c, h, w)
    assert client.interpolate(name, exact, {"codes": codes[0]}, steps=3).pixels.shape == (3, c, h, w)
    assert client.reconstruct(name, exact).pixels.shape == (1, c, h, w)
    vae = f"vae-{name}"
    latents = client.encode(vae, exact).mean
    assert client.decode(vae, latents=latents).pixels.shape == (1, c, h, w)
    assert client.traverse(vae, dimension=0, latent=latents[0], steps=4).pixels.shape == (4, c, h, w)


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
@pytest.mark.parametrize("name", SHAPES)
def test_photos_of_any_size_and_colour_are_converted_when_asked(client: Client, name: str, mode: str) -> None:
    c, h, w = SHAPES[name]
    photos = [picture(64, 48, "RGB", 1), picture(30, 90, "L", 2)]  # landscape colour, portrait grey
    encoded = client.encode(name, photos, resize=mode)
    assert encoded.codes.shape == (2, h // 4, w // 4)
    assert encoded.resize == {"mode": mode, "to": [c, h, w], "from": [[3, 48, 64], [1, 90, 30]]}
    rebuilt = client.reconstruct(f"vae-{name}", photos[0], resize=mode)
    assert rebuilt.pixels.shape == (1, c, h, w) and rebuilt.extra["resize"]["mode"] == mode


@pytest.mark.parametrize("name", SHAPES)
def test_without_resize_another_shape_is_refused_with_the_sizes_that_work(client: Client, name: str) -> None:
    c, h, w = SHAPES[name]
    with pytest.raises(InvalidInputError, match=f"takes {w}x{h} images"):  # a VAE: its one size
        client.encode(f"vae-{name}", picture(w + 1, h))
    with pytest.raises(InvalidInputError, match=f"nearest sizes that work are {w}x{h} or {w + 4}x{h}"):  # size-free
        client.encode(name, picture(w + 1, h))
    other = "L" if c == 3 else "RGB"
    with pytest.raises(InvalidInputError, match="greyscale|RGB"):
        client.encode(name, picture(w, h, other))
