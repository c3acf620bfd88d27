"""The Python client against a real `python -m service` over the tiny models: every route, every input form."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from client import Client, InvalidInputError, NotFoundError, UnreachableError
from tests.client.conftest import digit_image, digits
from tools.local_server import free_port

UNCONDITIONAL, CONDITIONAL, VAE, CVAE = "tiny-uncond", "tiny-vqvae", "tiny-vae", "tiny-cvae"


def test_the_client_imports_without_onnxruntime_or_torch() -> None:
    blocked = "import sys; sys.modules.update(onnxruntime=None, torch=None, fastapi=None, service=None, training=None)"
    code = f"{blocked}; import client, client.cli, tools.tour; print(client.Client.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Client"


def test_ready_and_models(client: Client) -> None:
    assert client.ready()
    listed = {m["model"]: m for m in client.models()}
    assert set(listed) == {UNCONDITIONAL, CONDITIONAL, VAE, CVAE}
    described = client.model(UNCONDITIONAL, version=1)
    assert described["kind"] == "vqvae" and described["manifest"]["num_codes"] == 16


def test_encode_takes_arrays_pil_images_uint8_and_files_alike(client: Client, tmp_path) -> None:
    pixels = digits(3)
    paths = []
    for i, image in enumerate(pixels):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray((image * 255).astype(np.uint8)).save(paths[-1])
    as_floats = client.encode(UNCONDITIONAL, pixels, include="z_e")
    assert as_floats.codes.shape == (3, 7, 7) and as_floats.codes.dtype == np.int64
    assert as_floats.z_e.shape == (3, 4, 7, 7) and as_floats.model == UNCONDITIONAL and as_floats.version == 1
    for same in (
        [Image.open(p) for p in paths],
        paths,
        [str(p) for p in paths],
        (pixels * 255).astype(np.uint8),
        pixels[:, None],
    ):
        assert np.array_equal(client.encode(UNCONDITIONAL, same).codes, as_floats.codes)
    one = client.encode(UNCONDITIONAL, paths[0])
    assert np.array_equal(one.codes, as_floats.codes[:1])


def test_encode_a_vae_gives_its_posterior(client: Client) -> None:
    encoded = client.encode(VAE, digits(2), include="sample", seed=3)
    assert encoded.mean.shape == encoded.logvar.shape == encoded.z.shape == (2, 2)
    assert encoded.seed == 3 and encoded.codes is None


def test_decode_and_reconstruct_round_trip(client: Client) -> None:
    codes = client.encode(UNCONDITIONAL, digits(2)).codes
    decoded = client.decode(UNCONDITIONAL, codes=codes)
    assert len(decoded.images) == 2 and decoded.images[0].size == (28, 28) and decoded.images[0].mode == "L"
    assert decoded.pixels.shape == (2, 1, 28, 28) and 0 <= decoded.pixels.min() <= decoded.pixels.max() <= 1
    single = client.decode(UNCONDITIONAL, codes=codes[0])
    assert np.array_equal(single.pixels, decoded.pixels[:1])
    exact = client.decode(UNCONDITIONAL, codes=codes, exact=True)
    assert np.abs(exact.pixels - decoded.pixels).max() <= 1 / 255
    rebuilt = client.reconstruct(UNCONDITIONAL, digits(2))
    assert np.array_equal(rebuilt.codes, codes) and np.array_equal(rebuilt.pixels, decoded.pixels)
    vae = client.decode(CVAE, latents=np.zeros((1, 3)), labels=[0, 1, 2][:1])
    assert vae.pixels.shape == (1, 1, 28, 28)
    assert client.reconstruct(VAE, digits(1)).latents.shape == (1, 2)


def test_sample_is_reproducible_and_completes_codes(client: Client) -> None:
    first = client.sample(UNCONDITIONAL, n=4, seed=5, temperature=0.8, top_k=8)
    again = client.sample(UNCONDITIONAL, n=4, seed=5, temperature=0.8, top_k=8)
    assert first.seed == 5 and first.codes.shape == (4, 7, 7) and np.array_equal(first.codes, again.codes)
    assert client.sample(CONDITIONAL, n=2, seed=1, labels=[3]).codes.shape == (2, 7, 7)
    mask = np.zeros((7, 7), bool)
    mask[4:] = True  # keep the top rows, resample the rest
    completed = client.sample(UNCONDITIONAL, n=3, seed=2, codes=first.codes[0], mask=mask)
    assert (completed.codes[:, :4] == first.codes[0, :4]).all()
    grid = client.sample(UNCONDITIONAL, n=4, seed=5).grid()
    assert isinstance(grid, Image.Image) and grid.size == (2 * 30 + 2, 2 * 30 + 2)
    assert client.sample(VAE, n=3, seed=0).latents.shape == (3, 2)


def test_interpolate_between_images_codes_and_latents(client: Client) -> None:
    codes = client.encode(UNCONDITIONAL, digits(2)).codes
    from_images = client.interpolate(UNCONDITIONAL, digit_image(0), digit_image(1), steps=5, method="slerp")
    assert len(from_images.images) == 5 and from_images.codes.shape == (5, 7, 7)
    from_codes = client.interpolate(UNCONDITIONAL, {"codes": codes[0]}, {"codes": codes[1]}, steps=3)
    assert np.array_equal(from_codes.codes[0], codes[0]) and np.array_equal(from_codes.codes[-1], codes[1])
    strip = client.interpolate(VAE, {"latent": [0.0, 0.0]}, {"latent": np.ones(2)}, steps=4).grid(4)
    assert strip.size == (4 * 30 + 2, 32)


def test_traverse_and_inpaint_a_vae(client: Client) -> None:
    swept = client.traverse(VAE, dimension=1, latent=[0.0, 0.0], low=-2, high=2, steps=5)
    assert np.allclose(swept.latents[:, 1], np.linspace(-2, 2, 5)) and len(swept.images) == 5
    assert len(client.traverse(VAE, dimension=0, image=digit_image(), steps=3).images) == 3
    mask = np.zeros((28, 28), bool)
    mask[14:] = True
    filled = client.inpaint(VAE, digit_image(), mask, iterations=3, seed=1)
    assert filled.seed == 1
    assert np.allclose(filled.pixels[0, 0, :14], digits(1)[0, :14], atol=1 / 255)


def test_errors_carry_the_services_status_and_code(client: Client) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.model("nothing")
    assert missing.value.status == 404 and missing.value.code == "not_found" and "nothing" in missing.value.message
    assert missing.value.request_id
    with pytest.raises(NotFoundError):
        client.sample(UNCONDITIONAL, version=9)
    with pytest.raises(InvalidInputError) as invalid:
        client.sample(CONDITIONAL, n=1)  # a class-conditional prior needs labels
    assert invalid.value.status == 422 and invalid.value.code == "invalid_input" and "labels" in invalid.value.message
    with pytest.raises(InvalidInputError, match="28x28 or 32x32"):
        client.encode(UNCONDITIONAL, Image.new("L", (30, 30)))


def test_a_service_that_is_not_there_is_unreachable() -> None:
    waits = []
    nobody = Client(f"http://127.0.0.1:{free_port()}", retries=2, sleep=waits.append)
    with nobody, pytest.raises(UnreachableError) as error:
        nobody.models()
    assert error.value.status == 0 and error.value.code == "unreachable" and waits == [0.5, 1.0]
