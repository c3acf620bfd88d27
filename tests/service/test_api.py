"""The v1 HTTP API over tiny exported models, through FastAPI's TestClient."""

import io
import json
import re

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from contract.images import encode_png
from tests.conftest import TinyPipeline
from tests.service.conftest import CONDITIONAL, UNCONDITIONAL, b64, decode_png, digit_png, make_client


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "live"}
    ready = client.get("/health/ready")
    models = [CONDITIONAL, UNCONDITIONAL, "tiny-vae", "tiny-cvae"]
    assert ready.status_code == 200 and ready.json()["models"] == {f"{m}/1": "CPUExecutionProvider" for m in models}
    client.post(f"/v1/models/{UNCONDITIONAL}/encode", files=[("images", digit_png())])
    metrics = client.get("/metrics").text
    assert 'latentgen_requests_total{method="POST",route="/v1/models/{model_id}/encode",status="200"}' in metrics
    assert 'latentgen_batch_size_count{graph="encoder",model="tiny-uncond"}' in metrics
    assert 'latentgen_model_info{model="tiny-uncond",provider="CPUExecutionProvider",version="1"} 1.0' in metrics


def test_without_batching_the_answers_are_the_same(client: TestClient, tiny_pipeline: TinyPipeline) -> None:
    upload = [("images", digit_png(3))]
    with make_client(tiny_pipeline, MAX_BATCH_SIZE=1) as unbatched:
        for path, request in [("encode", {"files": upload}), ("decode", {"json": {"codes": [[[1] * 7] * 7]}})]:
            url = f"/v1/models/{UNCONDITIONAL}/{path}"
            alone, batched = unbatched.post(url, **request), client.post(url, **request)
            assert alone.status_code == 200 and alone.json() == batched.json()


def test_models_are_listed_and_described(client: TestClient) -> None:
    listed = client.get("/v1/models").json()
    assert [m["model"] for m in listed["models"]] == sorted([CONDITIONAL, UNCONDITIONAL, "tiny-vae", "tiny-cvae"])
    described = client.get(f"/v1/models/{UNCONDITIONAL}", params={"version": 1}).json()
    assert described["provider"] == "CPUExecutionProvider" and described["versions"] == [1]
    assert described["manifest"]["num_codes"] == 16 and described["manifest"]["prior"]["conditional"] is False


@pytest.mark.parametrize(
    "path, status",
    [
        ("/v1/models/nothing", 404),
        (f"/v1/models/{UNCONDITIONAL}?version=9", 404),
        ("/v1/models/..%2F..%2Fetc", 404),
        ("/nope", 404),
    ],
)
def test_unknown_models_versions_and_routes_are_404(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status and error_code(response) == "not_found"


@pytest.mark.parametrize(
    "operation, query, status, message",
    [
        ("encode", "version=1&include=z_e&seed=3", 200, ""),
        ("encode", "version=0", 422, "query.version: Input should be greater than or equal to 1"),
        ("encode", "version=one", 422, "query.version: Input should be a valid integer"),
        ("encode", "include=everything", 422, "query.include: Input should be 'z_e' or 'sample'"),
        ("encode", "seed=-1", 422, "query.seed: Input should be greater than or equal to 0"),
        ("encode", "version=9", 404, "has no version 9"),
        ("decode", "version=1&format=array", 200, ""),
        ("decode", "format=gif", 422, "query.format: Input should be 'png' or 'array'"),
        ("decode", "version=9", 404, "has no version 9"),
    ],
)
def test_hot_routes_validate_their_query(
    client: TestClient, operation: str, query: str, status: int, message: str
) -> None:
    """encode and decode read their query string themselves (payloads.parse_query), with FastAPI's error format."""
    route = f"/v1/models/{UNCONDITIONAL}/{operation}?{query}"
    if operation == "encode":
        response = client.post(route, files=[("images", digit_png())])
    else:
        response = client.post(route, json={"codes": [[[1] * 7] * 7]})
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["version"] == 1 and ("z_e" in response.json() or operation == "decode")
    else:
        assert message in response.json()["error"]["message"]


def test_encode_accepts_multipart_base64_and_arrays_alike(client: TestClient) -> None:
    files = [digit_png(0), digit_png(1)]
    upload = client.post(f"/v1/models/{UNCONDITIONAL}/encode", files=[("images", f) for f in files])
    as_json = client.post(f"/v1/models/{UNCONDITIONAL}/encode", json={"images": [b64(f) for f in files]})
    pixels = [np.asarray(Image.open(io.BytesIO(f)), dtype=np.float32) / 255 for f in files]
    as_arrays = client.post(
        f"/v1/models/{UNCONDITIONAL}/encode", params={"include": "z_e"}, json={"arrays": [p.tolist() for p in pixels]}
    )
    assert upload.status_code == as_json.status_code == as_arrays.status_code == 200
    codes = np.array(upload.json()["codes"])
    assert codes.shape == (2, 7, 7) and codes.min() >= 0 and codes.max() < 16
    assert as_json.json()["codes"] == upload.json()["codes"] == as_arrays.json()["codes"]
    assert np.array(as_arrays.json()["z_e"]).shape == (2, 4, 7, 7)
    assert upload.json()["model"] == UNCONDITIONAL and upload.json()["version"] == 1


def bomb_png() -> bytes:
    """A valid PNG header claiming 100000 x 100000 pixels, with no pixel data behind it."""
    real = encode_png(np.zeros((28, 28)))
    return real[:16] + (100000).to_bytes(4, "big") * 2 + real[24:]


@pytest.mark.parametrize(
    "upload, message",
    [
        (encode_png(np.zeros((30, 30))), "28x28 or 32x32"),
        (encode_png(np.zeros((28, 28, 3))), "single-channel"),
        (digit_png()[:60], "truncated"),
        (b"%PDF-1.4 definitely not an image", "send a PNG or JPEG image; this is not an image format"),
        (bomb_png(), "28x28|PNG or JPEG"),
    ],
)
def test_bad_images_are_422(client: TestClient, upload: bytes, message: str) -> None:
    response = client.post(f"/v1/models/{UNCONDITIONAL}/encode", files=[("images", upload)])
    assert response.status_code == 422 and error_code(response) == "invalid_input"
    assert re.search(message, response.json()["error"]["message"])


@pytest.mark.parametrize(
    "body, message",
    [
        ({"images": ["%%% not base64"]}, "base64"),
        ({"arrays": [[[2.0] * 28] * 28]}, r"\[0, 1\]"),
        ({"arrays": [[[0.5] * 27] * 28]}, "multiples of 4; got 27x28"),
        ({}, "exactly one"),
        ({"images": [b64(digit_png())], "arrays": [[[0.0]]]}, "exactly one"),
    ],
)
def test_bad_json_encode_bodies_are_422(client: TestClient, body: dict, message: str) -> None:
    response = client.post(f"/v1/models/{UNCONDITIONAL}/encode", json=body)
    assert response.status_code == 422
    assert re.search(message, response.json()["error"]["message"])


def test_a_truncated_multipart_upload_is_400(client: TestClient) -> None:
    whole = httpx.Request("POST", "http://x/", files=[("images", ("d.png", digit_png(), "image/png"))])
    cut = whole.read()[:-30]
    response = client.post(
        f"/v1/models/{UNCONDITIONAL}/encode", content=cut, headers={"content-type": whole.headers["content-type"]}
    )
    assert response.status_code == 400 and error_code(response) == "bad_request"


def test_unsupported_media_is_415(client: TestClient) -> None:
    response = client.post(f"/v1/models/{UNCONDITIONAL}/encode", content=b"abc", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and error_code(response) == "unsupported_media_type"
    for operation, body in [("sample", b"n=1"), ("decode", b"codes=1")]:
        response = client.post(
            f"/v1/models/{UNCONDITIONAL}/{operation}",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 415, operation
    broken = client.post(
        f"/v1/models/{UNCONDITIONAL}/decode", content=b"{codes", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422 and error_code(broken) == "invalid_input"


def test_limits_are_enforced(tiny_pipeline: TinyPipeline) -> None:
    with make_client(tiny_pipeline, MAX_BODY_BYTES=2000, MAX_IMAGES=2, MAX_SAMPLES=3, MAX_STEPS=4) as limited:
        big = limited.post(f"/v1/models/{UNCONDITIONAL}/encode", json={"arrays": [[[0.5] * 28] * 28]})
        assert big.status_code == 413 and error_code(big) == "payload_too_large"
        many = limited.post(
            f"/v1/models/{UNCONDITIONAL}/encode", files=[("images", encode_png(np.zeros((28, 28))))] * 3
        )
        assert many.status_code in (413, 422)
        assert limited.post(f"/v1/models/{UNCONDITIONAL}/sample", json={"n": 4}).status_code == 422
        steps = limited.post(
            f"/v1/models/{UNCONDITIONAL}/interpolate",
            json={"start": {"codes": [[0] * 7] * 7}, "end": {"codes": [[1] * 7] * 7}, "steps": 5},
        )
        assert steps.status_code == 422 and "limit of 4" in steps.json()["error"]["message"]
        analogy = limited.post("/v1/models/tiny-cvae/decode", json={"latents": [[0.0] * 3], "labels": [0, 1, 2]})
        assert analogy.status_code == 422 and "limit of 2" in analogy.json()["error"]["message"]  # one z, 3 images


def test_decode_codes_and_latents(client: TestClient, tiny_pipeline: TinyPipeline) -> None:
    codes = np.random.default_rng(0).integers(0, 16, (3, 7, 7))
    response = client.post(f"/v1/models/{UNCONDITIONAL}/decode", json={"codes": codes.tolist()})
    assert response.status_code == 200
    images = [decode_png(text) for text in response.json()["images"]]
    assert len(images) == 3 and images[0].shape == (28, 28)
    codebook = np.load(tiny_pipeline.unconditional_package / "codebook.npy")
    latents = codebook[codes].transpose(0, 3, 1, 2)
    arrays = client.post(
        f"/v1/models/{UNCONDITIONAL}/decode", params={"format": "array"}, json={"latents": latents.tolist()}
    ).json()["arrays"]
    assert np.abs(np.array(arrays) * 255 - np.stack(images)[:, None]).max() <= 1  # same images, as PNG or as floats


@pytest.mark.parametrize(
    "body, message",
    [
        ({"codes": [[[16] * 7] * 7]}, r"\[0, 16\)"),
        ({"codes": [[[-1] * 7] * 7]}, r"\[0, 16\)"),
        ({"codes": [[0] * 7] * 7}, "valid array"),
        ({"latents": [[[[float("nan")] * 7] * 7] * 4]}, "finite"),
        ({"latents": [[[[1e39] * 7] * 7] * 4]}, "finite"),
    ],
)
def test_bad_decode_inputs_are_422(client: TestClient, body: dict, message: str) -> None:
    # json.dumps writes NaN as the bare token NaN, which Python's parser (and the service) accept.
    response = client.post(
        f"/v1/models/{UNCONDITIONAL}/decode", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert re.search(message, response.json()["error"]["message"])


def test_png_grid_on_accept_header(client: TestClient) -> None:
    response = client.post(
        f"/v1/models/{UNCONDITIONAL}/sample", json={"n": 4, "seed": 3}, headers={"accept": "image/png"}
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    grid = Image.open(io.BytesIO(response.content))
    assert grid.size == (2 * 30 + 2, 2 * 30 + 2)  # 2 x 2 tiles of 28 px with 2 px gaps
    assert response.headers["x-model"] == UNCONDITIONAL


def test_interpolation_between_images_codes_and_latents(client: TestClient) -> None:
    start, end = {"image": b64(digit_png(0))}, {"codes": [[3] * 7] * 7}
    body = client.post(
        f"/v1/models/{UNCONDITIONAL}/interpolate", json={"start": start, "end": end, "steps": 5, "method": "slerp"}
    ).json()
    assert len(body["images"]) == 5 and np.array(body["latents"]).shape == (5, 4, 7, 7)
    encoded = client.post(f"/v1/models/{UNCONDITIONAL}/encode", files=[("images", digit_png(0))]).json()["codes"]
    assert body["codes"][0] == encoded[0]  # the first step is the start image, re-quantized as the encoder does
    # Without a code penalty (this package has none) a code grid re-quantizes to itself; with one, a rarely used
    # code may give way to a frequent neighbour, as it would in the encoder.
    plain = client.post(f"/v1/models/{CONDITIONAL}/interpolate", json={"start": start, "end": end, "steps": 3}).json()
    assert plain["codes"][-1] == end["codes"]
    latent = {"latent": body["latents"][2]}
    continuous = client.post(
        f"/v1/models/{UNCONDITIONAL}/interpolate", json={"start": latent, "end": end, "steps": 3, "quantize": False}
    ).json()
    assert "codes" not in continuous and np.allclose(continuous["latents"][0], body["latents"][2], atol=1e-6)
    two_sources = client.post(f"/v1/models/{UNCONDITIONAL}/interpolate", json={"start": {**start, **end}, "end": end})
    assert two_sources.status_code == 422
    one_step = client.post(f"/v1/models/{UNCONDITIONAL}/interpolate", json={"start": start, "end": end, "steps": 1})
    assert one_step.status_code == 422 and "steps" in one_step.json()["error"]["message"]


def test_reconstruct(client: TestClient) -> None:
    response = client.post(f"/v1/models/{UNCONDITIONAL}/reconstruct", files=[("images", digit_png(2))])
    body = response.json()
    assert response.status_code == 200 and len(body["images"]) == 1 and np.array(body["codes"]).shape == (1, 7, 7)
    encoded = client.post(f"/v1/models/{UNCONDITIONAL}/encode", files=[("images", digit_png(2))]).json()["codes"]
    assert body["codes"] == encoded
