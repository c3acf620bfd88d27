"""The v1 HTTP API over tiny exported models, through FastAPI's TestClient."""

import io
import json
import re

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.config import Settings
from service.main import create_app
from tests.conftest import TinyPipeline
from tests.service.conftest import CONDITIONAL, UNCONDITIONAL, b64, decode_png, digit_png, make_client, png


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
    real = png(np.zeros((28, 28)))
    return real[:16] + (100000).to_bytes(4, "big") * 2 + real[24:]


@pytest.mark.parametrize(
    "upload, message",
    [
        (png(np.zeros((32, 32))), "28x28"),
        (png(np.zeros((28, 28, 3)), mode="RGB"), "single-channel"),
        (digit_png()[:60], "truncated|not a PNG"),
        (b"%PDF-1.4 definitely not an image", "not a PNG or JPEG"),
        (bomb_png(), "28x28|not a PNG"),
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
        ({"arrays": [[[0.5] * 27] * 28]}, "shape"),
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
        many = limited.post(f"/v1/models/{UNCONDITIONAL}/encode", files=[("images", png(np.zeros((28, 28))))] * 3)
        assert many.status_code in (413, 422)
        assert limited.post(f"/v1/models/{UNCONDITIONAL}/sample", json={"n": 4}).status_code == 422
        steps = limited.post(
            f"/v1/models/{UNCONDITIONAL}/interpolate",
            json={"start": {"codes": [[0] * 7] * 7}, "end": {"codes": [[1] * 7] * 7}, "steps": 5},
        )
        assert steps.status_code == 422 and "limit of 4" in steps.json()["error"]["message"]


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
        ({"codes": [[[0] * 6] * 7]}, "shape"),
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


def test_sampling_is_deterministic_per_seed_and_independent_of_n(client: TestClient) -> None:
    def codes(body: dict) -> np.ndarray:
        response = client.post(f"/v1/models/{UNCONDITIONAL}/sample", json=body)
        assert response.status_code == 200, response.text
        return np.array(response.json()["codes"])

    first = codes({"n": 5, "seed": 42})
    assert np.array_equal(first, codes({"n": 5, "seed": 42}))
    assert np.array_equal(first[:2], codes({"n": 2, "seed": 42}))  # sample i depends only on seed + i
    assert np.array_equal(first[3:], codes({"n": 2, "seed": 45}))
    assert not np.array_equal(first, codes({"n": 5, "seed": 7}))
    top1 = codes({"n": 3, "seed": 1, "top_k": 1})
    assert np.array_equal(top1[0], top1[1])  # greedy decoding ignores the random streams


def test_unseeded_sampling_reports_its_seed(client: TestClient) -> None:
    body = client.post(f"/v1/models/{UNCONDITIONAL}/sample", json={"n": 2}).json()
    again = client.post(f"/v1/models/{UNCONDITIONAL}/sample", json={"n": 2, "seed": body["seed"]}).json()
    assert again["codes"] == body["codes"]


def test_completion_keeps_unmasked_codes(client: TestClient) -> None:
    given = np.random.default_rng(1).integers(0, 16, (7, 7))
    mask = np.zeros((7, 7), bool)
    mask[4:] = True  # resample the bottom three rows
    body = {"n": 3, "seed": 0, "codes": given.tolist(), "mask": mask.tolist()}
    codes = np.array(client.post(f"/v1/models/{UNCONDITIONAL}/sample", json=body).json()["codes"])
    assert (codes[:, ~mask] == given[~mask]).all()
    half = client.post(f"/v1/models/{UNCONDITIONAL}/sample", json={"n": 1, "codes": given.tolist()})
    assert half.status_code == 422 and "both codes and mask" in half.json()["error"]["message"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"n": 0}, "n"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"labels": [1]}, "not class-conditional"),
        ({"codes": [[0] * 7] * 7, "mask": [[1] * 7] * 6}, "mask"),
        ({"seed": -5}, "seed"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_sample_requests_are_422(client: TestClient, body: dict, message: str) -> None:
    response = client.post(f"/v1/models/{UNCONDITIONAL}/sample", json=body)
    assert response.status_code == 422 and message in response.json()["error"]["message"].lower()


def test_class_conditional_sampling(client: TestClient) -> None:
    missing = client.post(f"/v1/models/{CONDITIONAL}/sample", json={"n": 2})
    assert missing.status_code == 422 and "class-conditional" in missing.json()["error"]["message"]
    out_of_range = client.post(f"/v1/models/{CONDITIONAL}/sample", json={"n": 1, "labels": [10]})
    assert out_of_range.status_code == 422
    by_class = [
        client.post(f"/v1/models/{CONDITIONAL}/sample", json={"n": 4, "seed": 5, "labels": [c]}).json()["codes"]
        for c in (0, 9)
    ]
    both = client.post(f"/v1/models/{CONDITIONAL}/sample", json={"n": 4, "seed": 5, "labels": [0, 0, 0, 0]}).json()[
        "codes"
    ]
    assert by_class[0] == both


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


def test_request_ids_are_echoed_or_made(client: TestClient) -> None:
    assert client.get("/health/live", headers={"x-request-id": "trace-123"}).headers["x-request-id"] == "trace-123"
    made = client.get("/health/live", headers={"x-request-id": "bad id with spaces"}).headers["x-request-id"]
    assert len(made) == 32 and made != "bad id with spaces"
    assert client.get("/nope").headers["x-request-id"]


def test_api_key_protects_everything_but_liveness(tiny_pipeline: TinyPipeline) -> None:
    with make_client(tiny_pipeline, API_KEY="s3cret") as protected:
        assert protected.get("/health/live").status_code == 200
        for path in ("/health/ready", "/metrics", "/v1/models", "/v2/health/ready"):
            assert protected.get(path).status_code == 401, path
        assert error_code(protected.get("/v1/models", headers={"x-api-key": "wrong"})) == "unauthorized"
        assert protected.get("/v1/models", headers={"x-api-key": "s3cret"}).status_code == 200
        assert protected.get("/v1/models", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_openapi_documents_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for operation in ("encode", "decode", "sample", "interpolate", "reconstruct"):
        assert f"/v1/models/{{model_id}}/{operation}" in paths
    assert "multipart/form-data" in paths["/v1/models/{model_id}/encode"]["post"]["requestBody"]["content"]
    for operation, names in [
        ("encode", {"model_id", "version", "include", "seed"}),
        ("decode", {"model_id", "version", "format"}),
    ]:
        parameters = paths[f"/v1/models/{{model_id}}/{operation}"]["post"]["parameters"]
        assert {p["name"] for p in parameters} == names, operation


def test_v2_json_inference_on_every_kind_of_graph(client: TestClient) -> None:
    def infer(name: str, inputs: list[dict]) -> dict:
        response = client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})
        assert response.status_code == 200, response.text
        return {t["name"]: np.array(t["data"]).reshape(t["shape"]) for t in response.json()["outputs"]}

    z = {"name": "z", "shape": [2, 3], "datatype": "FP32", "data": [0.1] * 6}
    labels = {"name": "labels", "shape": [2], "datatype": "INT64", "data": [1, 8]}
    assert infer("tiny-cvae.decoder", [z, labels])["image"].shape == (2, 1, 28, 28)
    image = {"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.5] * 784}
    assert set(infer("tiny-vae.encoder", [image])) == {"mean", "logvar"}
    bad = client.post("/v2/models/tiny-cvae.decoder/infer", json={"inputs": [z, labels | {"data": [1, 10]}]})
    assert bad.status_code == 422 and "[0, 10)" in bad.json()["error"]
    nan = client.post(
        "/v2/models/tiny-vae.decoder/infer",
        content=json.dumps({"inputs": [z | {"shape": [3, 2], "data": [float("nan")] * 6}]}),
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422 and "NaN" in nan.json()["error"]


def test_non_ascii_digits_are_not_numbers(client: TestClient) -> None:
    """'²'.isdigit() is true but int('²') fails: versions and lengths must be ASCII digits."""
    assert client.get("/v2/models/tiny-vae.encoder/versions/²").status_code == 404
    response = client.post(
        "/v2/models/tiny-vae.encoder/infer",
        content=b"{}",
        headers={"inference-header-content-length": "²".encode("latin-1")},
    )
    assert response.status_code == 422


def test_an_unexpected_error_is_a_json_500_with_the_request_id(tiny_pipeline: TinyPipeline) -> None:
    app = create_app(Settings(MODELS_DIR=tiny_pipeline.models))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as broken:
        response = broken.get("/boom", headers={"x-request-id": "find-me"})
    assert response.status_code == 500 and error_code(response) == "internal_error"
    assert "X-Request-ID" in response.json()["error"]["message"]


def test_require_gpu_fails_readiness_on_a_cpu_only_machine(tiny_pipeline: TinyPipeline) -> None:
    with make_client(tiny_pipeline, REQUIRE_GPU=True) as strict:
        ready = strict.get("/health/ready")
        assert (
            ready.status_code == 503
            and ready.json()["status"] == "not_ready"
            and "REQUIRE_GPU" in ready.json()["reason"]
        )
        assert strict.get("/v2/health/ready").status_code == 503
        assert strict.get("/health/live").status_code == 200  # alive, just not ready
