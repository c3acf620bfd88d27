"""Every numeric field at and beyond its bounds, and the protocol details that clients and monitors hit:
nothing a client sends may give a 5xx, be silently coerced, or be accepted and ignored."""

import json

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TinyPipeline
from tests.service.conftest import UNCONDITIONAL, b64, digit_png, make_client


def post(client: TestClient, path: str, body: object) -> object:
    """JSON as Python writes it: huge integers stay exact, NaN and Infinity become bare tokens."""
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def message(response: object) -> str:
    error = response.json()["error"]
    return error if isinstance(error, str) else error["message"]


@pytest.mark.parametrize("top_k", [0, 17, 2**31, 2**63, 10**30])
def test_top_k_outside_one_to_k_is_422(client: TestClient, top_k: int) -> None:
    response = post(client, f"/v1/models/{UNCONDITIONAL}/sample", {"n": 1, "seed": 0, "top_k": top_k})
    assert response.status_code == 422, response.text


def test_top_k_at_its_bounds_samples(client: TestClient) -> None:
    for top_k in (1, 16):  # the tiny codebook has K = 16
        response = post(client, f"/v1/models/{UNCONDITIONAL}/sample", {"n": 1, "seed": 0, "top_k": top_k})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_huge_latents_are_refused_not_overflowed(client: TestClient, method: str) -> None:
    body = {"start": {"latent": [1e20, 1e20]}, "end": {"latent": [-1e20, 3e20]}, "steps": 3, "method": method}
    response = post(client, "/v1/models/tiny-vae/interpolate?format=array", body)
    assert response.status_code == 422 and "within" in message(response)


def test_slerp_between_opposite_latents_is_finite(client: TestClient) -> None:
    body = {"start": {"latent": [1e6, 0.0]}, "end": {"latent": [-1e6, 0.0]}, "steps": 3, "method": "slerp"}
    response = post(client, "/v1/models/tiny-vae/interpolate?format=array", body)
    assert response.status_code == 200, response.text
    assert response.json()["latents"][1] == [0.0, 0.0]  # the great circle is undefined: the straight line


@pytest.mark.parametrize("end", [1e300, float("inf"), float("nan")])
def test_traversal_ends_are_bounded(client: TestClient, end: float) -> None:
    body = {"latent": [0.0, 0.0], "dimension": 0, "low": -1.0, "high": end, "steps": 3}
    assert post(client, "/v1/models/tiny-vae/traverse", body).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"n": "3"},
        {"n": 2.0},
        {"n": True},
        {"temperature": "1"},
        {"seed": "7"},
        {"labels": ["1"]},
        {"top_k": 1.5},
    ],
)
def test_numbers_sent_as_strings_or_floats_are_not_coerced(client: TestClient, body: dict) -> None:
    assert post(client, "/v1/models/tiny-vqvae/sample", body).status_code == 422


def test_booleans_are_strict(client: TestClient) -> None:
    codes = [[0] * 7] * 7
    body = {"start": {"codes": codes}, "end": {"codes": codes}, "steps": 2, "quantize": "yes"}
    assert post(client, f"/v1/models/{UNCONDITIONAL}/interpolate", body).status_code == 422
    assert post(client, f"/v1/models/{UNCONDITIONAL}/interpolate", body | {"quantize": True}).status_code == 200


def test_labels_that_a_model_cannot_use_are_refused_everywhere(client: TestClient) -> None:
    codes = [[[0] * 7] * 7]
    # tiny-vqvae's prior is class-conditional, but no VQ-VAE decoder takes labels.
    for model in ("tiny-vqvae", UNCONDITIONAL):
        response = post(client, f"/v1/models/{model}/decode", {"codes": codes, "labels": [1]})
        assert response.status_code == 422 and "labels" in message(response)
        body = {"start": {"codes": codes[0]}, "end": {"codes": codes[0]}, "steps": 2, "labels": [1]}
        assert post(client, f"/v1/models/{model}/interpolate", body).status_code == 422
    files = {"images": ("a.png", digit_png(), "image/png")}
    for model in (UNCONDITIONAL, "tiny-vae"):  # neither takes a class label anywhere
        response = client.post(f"/v1/models/{model}/reconstruct?labels=3", files=files)
        assert response.status_code == 422 and "labels" in message(response), model
    assert client.post("/v1/models/tiny-cvae/reconstruct?labels=3", files=files).status_code == 200


def v2_input(name: str, datatype: str, shape: list[int], data: list) -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


@pytest.mark.parametrize(
    "body",
    [
        v2_input("z", "FP32", [1, 2], [10**400, 0.0]),  # an integer literal beyond any float
        v2_input("z", "FP32", [1, 2], [1e39, 0.0]),  # beyond float32
        v2_input("z", "FP32", [1, 2], [True, False]),
        v2_input("z", "FP32", [1, 2], ["1", "2"]),
        v2_input("z", "FP32", [-1, 2], [0.0, 0.0]),  # a negative dimension is not "infer it"
        v2_input("z", "FP32", [2, 2], [0.0, 0.0]),  # too few values for the shape
        {"inputs": [v2_input("z", "FP32", [1, 2], [0.0, 0.0])["inputs"][0]] * 2},  # the same input twice
    ],
)
def test_v2_float_inputs_out_of_type_or_range_are_422(client: TestClient, body: dict) -> None:
    response = post(client, "/v2/models/tiny-vae.decoder/infer", body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 1.5, True, 10**30])
def test_v2_int64_inputs_are_exact_integers_in_range(client: TestClient, value: object) -> None:
    codes = [value] + [0] * 48
    response = post(client, f"/v2/models/{UNCONDITIONAL}.prior/infer", v2_input("codes", "INT64", [1, 7, 7], codes))
    assert response.status_code == 422, response.text


def test_a_non_finite_output_is_a_422_with_a_reason(client: TestClient) -> None:
    z_q = v2_input("z_q", "FP32", [1, 4, 7, 7], [3e38, -3e38] * 98)  # finite in, overflowing inside the decoder
    response = post(client, f"/v2/models/{UNCONDITIONAL}.decoder/infer", z_q)
    assert response.status_code == 422 and "not finite" in message(response)


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/v1/models", "/v1/models/tiny-vae", "/metrics"])
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]


def test_the_bearer_scheme_is_case_insensitive(tiny_pipeline: TinyPipeline) -> None:
    with make_client(tiny_pipeline, API_KEY="s3cret") as protected:
        for scheme in ("Bearer", "bearer", "BEARER"):
            assert protected.get("/v1/models", headers={"authorization": f"{scheme} s3cret"}).status_code == 200
        for header in ("Basic s3cret", "Bearers3cret", "s3cret"):
            assert protected.get("/v1/models", headers={"authorization": header}).status_code == 401


def chunks(size: int):
    """A body without Content-Length, sent chunked."""
    for _ in range(size // 65536 + 1):
        yield b" " * 65536


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/models/{UNCONDITIONAL}/sample",
        f"/v1/models/{UNCONDITIONAL}/decode",
        f"/v1/models/{UNCONDITIONAL}/encode",
        f"/v1/models/{UNCONDITIONAL}/interpolate",
        "/v1/models/tiny-vae/traverse",
        f"/v2/models/{UNCONDITIONAL}.decoder/infer",
    ],
)
def test_a_chunked_body_over_the_limit_is_413_on_every_route(tiny_pipeline: TinyPipeline, path: str) -> None:
    with make_client(tiny_pipeline, MAX_BODY_BYTES=100_000) as small:
        response = small.post(path, content=chunks(200_000), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text


def test_images_in_json_are_still_accepted_at_the_limit(client: TestClient) -> None:
    body = {"images": [b64(digit_png())]}
    assert post(client, f"/v1/models/{UNCONDITIONAL}/encode", body).status_code == 200
