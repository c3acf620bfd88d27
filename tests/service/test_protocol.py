"""What every route shares: request ids, the API key, the OpenAPI schema, the Open Inference Protocol, errors
and readiness, through FastAPI's TestClient."""

import json

import numpy as np
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from tests.conftest import TinyPipeline
from tests.service.conftest import make_client
from tests.service.test_api import error_code


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
        ("encode", {"model_id", "version", "include", "seed", "resize"}),
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
