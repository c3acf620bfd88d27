"""The v1 API on VAE packages: an MLP VAE with a 2-D latent and a conv VAE with a class-conditional decoder."""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.service.conftest import b64, decode_png, digit_png

VAE, CVAE = "/v1/models/tiny-vae", "/v1/models/tiny-cvae"


def post(client: TestClient, path: str, body: dict, status: int = 200, **params: object) -> dict:
    response = client.post(path, json=body, params=params)
    assert response.status_code == status, response.text
    return response.json()


def test_encode_gives_the_posterior_and_seeded_samples(client: TestClient) -> None:
    files = [("images", digit_png(0)), ("images", digit_png(1))]
    body = client.post(f"{VAE}/encode", files=files).json()
    mean, logvar = np.array(body["mean"]), np.array(body["logvar"])
    assert mean.shape == logvar.shape == (2, 2) and "codes" not in body
    drawn = client.post(f"{VAE}/encode", files=files, params={"include": "sample", "seed": 4}).json()
    again = client.post(f"{VAE}/encode", files=files, params={"include": "sample", "seed": 4}).json()
    assert drawn["z"] == again["z"] and drawn["seed"] == 4 and not np.allclose(drawn["z"], mean)
    wrong = client.post(f"{VAE}/encode", files=files, params={"include": "z_e"})
    assert wrong.status_code == 422


def test_decode_latents_and_analogies_across_classes(client: TestClient) -> None:
    z = [[0.3, -1.0]]
    body = post(client, f"{VAE}/decode", {"latents": z})
    assert len(body["images"]) == 1 and decode_png(body["images"][0]).shape == (28, 28)
    style = [[0.5, 0.0, -0.5]] * 10  # one z drawn as every class
    analogy = post(client, f"{CVAE}/decode", {"latents": style, "labels": list(range(10))}, format="array")
    images = np.array(analogy["arrays"])
    assert images.shape == (10, 1, 28, 28) and not np.allclose(images[0], images[9])
    once = post(client, f"{CVAE}/decode", {"latents": style[:1], "labels": list(range(10))}, format="array")
    np.testing.assert_allclose(np.array(once["arrays"]), images, atol=1e-6)  # one z with ten labels: the same
    row = client.post(
        f"{CVAE}/decode", json={"latents": style[:1], "labels": list(range(10))}, headers={"accept": "image/png"}
    )
    assert Image.open(io.BytesIO(row.content)).size == (10 * 30 + 2, 32)  # an analogy is one row
    assert (
        "one per item (2)"
        in post(client, f"{CVAE}/decode", {"latents": style[:2], "labels": [1, 2, 3]}, 422)["error"]["message"]
    )
    assert "class-conditional" in post(client, f"{CVAE}/decode", {"latents": style}, 422)["error"]["message"]
    assert (
        "not class-conditional" in post(client, f"{VAE}/decode", {"latents": z, "labels": [1]}, 422)["error"]["message"]
    )
    assert "vqvae" in post(client, f"{VAE}/decode", {"codes": [[[0] * 7] * 7]}, 422)["error"]["message"]
    assert "shape" in post(client, f"{VAE}/decode", {"latents": [[1.0, 2.0, 3.0]]}, 422)["error"]["message"]
    assert "rectangular" in post(client, f"{VAE}/decode", {"latents": [[1.0, 2.0], [3.0]]}, 422)["error"]["message"]


def test_sampling_from_the_prior_is_seeded_per_sample(client: TestClient) -> None:
    first = post(client, f"{CVAE}/sample", {"n": 4, "seed": 9, "labels": [3]})
    assert np.array(first["latents"]).shape == (4, 3) and first["seed"] == 9
    tail = post(client, f"{CVAE}/sample", {"n": 2, "seed": 11, "labels": [3]})
    assert np.allclose(first["latents"][2:], tail["latents"])  # sample i uses seed + i
    hot = post(client, f"{VAE}/sample", {"n": 1, "seed": 9, "temperature": 2.0})
    cold = post(client, f"{VAE}/sample", {"n": 1, "seed": 9, "temperature": 1.0})
    assert np.allclose(np.array(hot["latents"]), 2 * np.array(cold["latents"]), atol=1e-6)
    assert post(client, f"{VAE}/sample", {"n": 1, "top_k": 5}, 422)["error"]["code"] == "invalid_input"


def test_interpolation_in_latent_space(client: TestClient) -> None:
    body = {"start": {"image": b64(digit_png(0))}, "end": {"latent": [2.0, 2.0]}, "steps": 4, "method": "slerp"}
    result = post(client, f"{VAE}/interpolate", body)
    latents = np.array(result["latents"])
    assert latents.shape == (4, 2) and np.allclose(latents[-1], [2.0, 2.0]) and "codes" not in result
    assert "quantize" in post(client, f"{VAE}/interpolate", body | {"quantize": True}, 422)["error"]["message"]
    codes_end = body | {"end": {"codes": [[0] * 7] * 7}}
    assert "vqvae" in post(client, f"{VAE}/interpolate", codes_end, 422)["error"]["message"]


def test_traversal_sweeps_one_dimension(client: TestClient) -> None:
    result = post(client, f"{CVAE}/traverse", {"latent": [0.1, 0.2, 0.3], "dimension": 1, "steps": 5, "labels": [7]})
    latents = np.array(result["latents"])
    assert np.allclose(latents[:, 1], np.linspace(-3, 3, 5)) and np.allclose(latents[:, [0, 2]], [0.1, 0.3])
    assert len(result["images"]) == 5
    from_image = post(client, f"{VAE}/traverse", {"image": b64(digit_png(3)), "dimension": 0, "low": -1, "high": 1})
    assert len(from_image["images"]) == 9
    assert "dimension" in post(client, f"{VAE}/traverse", {"latent": [0, 0], "dimension": 2}, 422)["error"]["message"]
    assert (
        "vae"
        in post(client, "/v1/models/tiny-uncond/traverse", {"latent": [0, 0], "dimension": 0}, 422)["error"]["message"]
    )


def test_inpainting_keeps_the_observed_pixels(client: TestClient) -> None:
    image = digit_png(5)
    mask = np.zeros((28, 28), bool)
    mask[14:] = True  # the bottom half is missing
    body = {"image": b64(image), "mask": mask.tolist(), "iterations": 5, "seed": 2}
    result = post(client, f"{VAE}/inpaint", body, format="array")
    filled = np.array(result["arrays"])[0, 0]
    source = np.asarray(Image.open(io.BytesIO(image)), np.float32) / 255
    assert np.allclose(filled[~mask], source[~mask], atol=1e-6)
    assert post(client, f"{VAE}/inpaint", body, format="array")["arrays"] == result["arrays"]  # seeded
    bad_mask = body | {"mask": [[True] * 27] * 28}
    assert "mask" in post(client, f"{VAE}/inpaint", bad_mask, 422)["error"]["message"]
    assert post(client, "/v1/models/tiny-uncond/inpaint", body, 422)["error"]["code"] == "invalid_input"


@pytest.mark.parametrize("path", [f"{VAE}/reconstruct", f"{CVAE}/reconstruct"])
def test_reconstruct_through_the_posterior_mean(client: TestClient, path: str) -> None:
    params = {"labels": [4]} if "cvae" in path else {}
    response = client.post(path, files=[("images", digit_png(6))], params=params)
    assert response.status_code == 200, response.text
    assert len(response.json()["images"]) == 1 and len(response.json()["latents"][0]) in (2, 3)
