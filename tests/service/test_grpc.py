"""The Open Inference Protocol over gRPC, through tritonclient.grpc unchanged, against a real server process."""

import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.conftest import TinyPipeline
from tools.local_server import free_port, serving


@pytest.fixture(scope="module")
def grpc_url(tiny_pipeline: TinyPipeline):
    port = free_port()
    with serving(MODELS_DIR=tiny_pipeline.models, GRPC_PORT=port, LOG_LEVEL="warning") as (http_url, _):
        yield f"127.0.0.1:{port}", http_url


@pytest.fixture
def client(grpc_url) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(grpc_url[0])


def infer_input(name: str, array: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), {np.float32: "FP32", np.int64: "INT64"}[array.dtype.type])
    tensor.set_data_from_numpy(array)
    return tensor


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("tiny-uncond.encoder") and not client.is_model_ready("nothing.encoder")
    metadata = client.get_model_metadata("tiny-uncond.prior_row", as_json=True)
    assert [t["name"] for t in metadata["inputs"]] == ["codes_above", "v_above"]
    assert metadata["inputs"][0]["datatype"] == "INT64" and metadata["inputs"][1]["shape"][1] == "-1"
    assert "model_repository" in client.get_server_metadata(as_json=True)["extensions"]


def test_infer_with_fp32_and_int64_tensors_matches_http(client: triton.InferenceServerClient, grpc_url) -> None:
    images = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    result = client.infer("tiny-uncond.encoder", [infer_input("image", images)])
    codes = result.as_numpy("codes")
    assert codes.shape == (3, 7, 7) and codes.dtype == np.int64 and result.as_numpy("z_e").shape == (3, 4, 7, 7)
    over_http = triton_http.InferenceServerClient(grpc_url[1].removeprefix("http://"))
    http_input = triton_http.InferInput("image", [3, 1, 28, 28], "FP32")
    http_input.set_data_from_numpy(images)
    assert np.array_equal(over_http.infer("tiny-uncond.encoder", [http_input]).as_numpy("codes"), codes)
    logits = client.infer("tiny-vqvae.prior", [infer_input("codes", codes), infer_input("labels", np.array([1, 2, 3]))])
    assert logits.as_numpy("logits").shape == (3, 16, 7, 7)
    only = client.infer(
        "tiny-uncond.encoder", [infer_input("image", images)], outputs=[triton.InferRequestedOutput("codes")]
    )
    assert only.as_numpy("z_e") is None and np.array_equal(only.as_numpy("codes"), codes)


@pytest.mark.parametrize(
    "name, inputs, status, words",
    [
        ("nothing.encoder", [("image", np.zeros((1, 1, 28, 28), np.float32))], "NOT_FOUND", "no model"),
        ("tiny-uncond.encoder", [("image", np.zeros((1, 1, 28, 28), np.int64))], "INVALID_ARGUMENT", "takes FP32"),
        ("tiny-uncond.encoder", [("image", np.zeros((1, 1, 27, 28), np.float32))], "INVALID_ARGUMENT", "multiple"),
        ("tiny-uncond.encoder", [("picture", np.zeros((1, 1, 28, 28), np.float32))], "INVALID_ARGUMENT", "unknown"),
        ("tiny-uncond.prior", [("codes", np.full((1, 7, 7), 99, np.int64))], "INVALID_ARGUMENT", "[0, 16)"),
        (
            "tiny-uncond.prior_row",  # inputs that disagree on the batch size
            [("codes_above", np.zeros((2, 1, 7), np.int64)), ("v_above", np.zeros((2, 3, 8, 1, 7), np.float32))],
            "INVALID_ARGUMENT",
            "disagree",
        ),
    ],
)
def test_bad_input_gets_the_right_status(client, name: str, inputs: list, status: str, words: str) -> None:
    with pytest.raises(InferenceServerException) as error:
        client.infer(name, [infer_input(n, a) for n, a in inputs])
    assert status in str(error.value.status()) and words in error.value.message()


def test_the_api_key_is_asked_for_as_over_http(tiny_pipeline: TinyPipeline) -> None:
    port = free_port()
    with serving(MODELS_DIR=tiny_pipeline.models, GRPC_PORT=port, API_KEY="s3cret", LOG_LEVEL="warning"):
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_live()  # liveness is open
        with pytest.raises(InferenceServerException, match="API key"):
            client.is_server_ready()
        assert client.is_server_ready(headers={"x-api-key": "s3cret"})
        assert client.is_server_ready(headers={"authorization": "Bearer s3cret"})


def test_the_repository_index_over_grpc(client: triton.InferenceServerClient) -> None:
    index = client.get_model_repository_index(as_json=True)["models"]
    assert {(m["name"], m["state"]) for m in index} >= {("tiny-uncond", "READY"), ("tiny-vae", "READY")}
    with pytest.raises(InferenceServerException, match="MODEL_CONTROL=explicit"):
        client.unload_model("tiny-vae")  # not in the default control mode


def test_a_size_free_encoder_shows_free_sides_and_takes_any_multiple_of_its_stride(
    client: triton.InferenceServerClient, grpc_url
) -> None:
    metadata = client.get_model_metadata("tiny-uncond.encoder", as_json=True)
    assert metadata["inputs"][0]["shape"] == ["-1", "1", "-1", "-1"]
    images = np.random.default_rng(1).random((2, 1, 44, 100), dtype=np.float32)
    codes = client.infer("tiny-uncond.encoder", [infer_input("image", images)]).as_numpy("codes")
    assert codes.shape == (2, 11, 25)
    decoded = client.infer("tiny-uncond.decoder", [infer_input("z_q", np.zeros((1, 4, 3, 9), np.float32))])
    assert decoded.as_numpy("image").shape == (1, 1, 12, 36)
