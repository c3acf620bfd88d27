"""Model names never leave the repository: on every front (HTTP v1, v2, the repository API, gRPC), with and without
the API key, a name that is not a model id is a 404 before any file is touched; no answer names a folder beside the
repository or a path on this machine; over-long and odd names are 4xx, never a 5xx or a reset connection."""

import http.client
import json
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import tritonclient.grpc as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.utils import InferenceServerException

from contract.manifest import is_model_id
from service.registry import failure_reason
from tests.conftest import TinyPipeline
from tools.local_server import free_port, serving

NEIGHBOUR = "secret-neighbour-7"
KEY = "s3cret"
# Names as they go on the wire (already percent-encoded where they must be).
BAD_NAMES = [
    "..",
    ".",
    "%2E%2E",
    "%2e",
    "...",
    "a" * 10_000,
    "a" * 129,
    "a%00b",
    "%00",
    "a%2Fb",
    "..%2F" + NEIGHBOUR,
    "%2E%2E%2F" + NEIGHBOUR,
    "-leading-dash",
    "_leading",
    "caf%C3%A9",
    "sp%20ace",
    "back%5Cslash",
    "%FF%FE",
]


@pytest.fixture(scope="module")
def repository(tiny_pipeline: TinyPipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MODELS_DIR with two models, and beside it a neighbour folder and a numeric folder holding a real package."""
    root = tmp_path_factory.mktemp("names")
    models = root / "models"
    shutil.copytree(tiny_pipeline.unconditional_package, models / "tiny-uncond" / "1")
    shutil.copytree(tiny_pipeline.vae_package, models / "tiny-vae" / "1")
    (root / NEIGHBOUR).mkdir()
    shutil.copytree(tiny_pipeline.vae_package, root / NEIGHBOUR / "1")  # would load, were it ever read
    shutil.copytree(tiny_pipeline.vae_package, root / "3")
    return models


@pytest.fixture(scope="module", params=["no key", "key"])
def server(request: pytest.FixtureRequest, repository: Path):
    key = KEY if request.param == "key" else ""
    grpc_port = free_port()
    settings = {"MODELS_DIR": repository, "MODEL_CONTROL": "explicit", "GRPC_PORT": grpc_port, "LOG_LEVEL": "error"}
    with serving(**settings, API_KEY=key) as (url, _):
        yield url.removeprefix("http://"), f"127.0.0.1:{grpc_port}", key


def call(address: str, method: str, path: str, key: str = "", body: bytes | None = None) -> tuple[int, str]:
    """One request with the path exactly as given (no client-side normalization of dot segments)."""
    connection = http.client.HTTPConnection(address, timeout=30)
    headers = {"x-api-key": key} if key else {}
    if body is not None:
        headers["content-type"] = "application/json"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def routes(name: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/v1/models/{name}"),
        ("POST", f"/v1/models/{name}/sample"),
        ("GET", f"/v2/models/{name}"),
        ("GET", f"/v2/models/{name}.encoder"),
        ("GET", f"/v2/models/{name}/ready"),
        ("GET", f"/v2/models/{name}.encoder/versions/1"),
        ("POST", f"/v2/models/{name}.encoder/infer"),
        ("POST", f"/v2/repository/models/{name}/load"),
        ("POST", f"/v2/repository/models/{name}/unload"),
    ]


def assert_tells_nothing(text: str, repository: Path) -> None:
    assert NEIGHBOUR not in text and str(repository.parent) not in text and "/tmp" not in text, text[:300]


def test_the_model_id_rule() -> None:
    for name in ("mnist-vqvae", "A", "a.b_c-9", "x" * 128, "9"):
        assert is_model_id(name)
    for name in ("", ".", "..", ".hidden", "-a", "_a", "a/b", "a\\b", "a\x00", "x" * 129, "é", "a b", "a\n"):
        assert not is_model_id(name), name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_is_not_a_model_id_is_a_404_on_every_http_route(server, repository: Path, name: str) -> None:
    address, _, key = server
    for method, path in routes(name):
        status, text = call(address, method, path, key, body=b"{}" if method == "POST" else None)
        assert status == 404, (method, path[:80], status, text[:200])
        assert_tells_nothing(text, repository)
        if key:
            assert call(address, method, path)[0] == 401  # without the key nothing is looked up at all


def test_the_index_lists_the_repository_only_after_every_bad_name(server, repository: Path) -> None:
    address, _, key = server
    for name in BAD_NAMES:
        call(address, "POST", f"/v2/repository/models/{name}/load", key)
    status, text = call(address, "POST", "/v2/repository/index", key)
    assert status == 200
    assert {(e["name"], e["version"], e["state"]) for e in json.loads(text)} == {
        ("tiny-uncond", "1", "READY"),
        ("tiny-vae", "1", "READY"),
    }
    assert_tells_nothing(text, repository)
    status, text = call(address, "GET", "/health/ready", key)
    assert status == 200 and set(json.loads(text)["models"]) == {"tiny-uncond/1", "tiny-vae/1"}


def test_load_says_which_versions_serve_and_which_were_refused(server, repository: Path) -> None:
    address, _, key = server
    staging = repository / "tiny-vae" / ".2.partial"
    shutil.copytree(repository / "tiny-vae" / "1", staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    (staging / "manifest.json").write_text(json.dumps({**manifest, "version": 2}))
    (staging / "encoder.onnx").write_bytes(b"not a graph")
    staging.rename(repository / "tiny-vae" / "2")
    try:
        status, text = call(address, "POST", "/v2/repository/models/tiny-vae/load", key)
        report = json.loads(text)
        assert status == 200 and report["name"] == "tiny-vae" and report["loaded"] == [1]
        assert [r["version"] for r in report["refused"]] == [2] and "sha256" in report["refused"][0]["reason"]
        assert_tells_nothing(text, repository)
    finally:
        shutil.rmtree(repository / "tiny-vae" / "2")
        assert call(address, "POST", "/v2/repository/models/tiny-vae/load", key)[0] == 200


def test_load_of_a_model_with_no_version_that_loads_is_a_400_with_the_reasons(server, repository: Path) -> None:
    address, _, key = server
    (repository / "empty-model" / "notaversion").mkdir(parents=True)
    try:
        status, text = call(address, "POST", "/v2/repository/models/empty-model/load", key)
        assert status == 400 and "no version that loads" in text and "not a numeric version" in text
        assert_tells_nothing(text, repository)
    finally:
        shutil.rmtree(repository / "empty-model")
        call(address, "POST", "/v2/repository/models/empty-model/load", key)  # forgets it again


@pytest.mark.parametrize("name", ["..", ".", "a" * 10_000, "a\x00b", "a/b", f"../{NEIGHBOUR}", "é"])
def test_grpc_refuses_the_same_names_with_not_found(server, repository: Path, name: str) -> None:
    _, grpc_address, key = server
    client = triton.InferenceServerClient(grpc_address)
    headers = {"x-api-key": key} if key else None
    image = triton.InferInput("image", [1, 1, 28, 28], "FP32")
    image.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32))
    calls = [
        lambda: client.get_model_metadata(f"{name}.encoder", headers=headers),
        lambda: client.get_model_metadata(name, model_version="1", headers=headers),
        lambda: client.infer(f"{name}.encoder", [image], headers=headers),
        lambda: client.load_model(name, headers=headers),
        lambda: client.unload_model(name, headers=headers),
    ]
    for attempt in calls:
        with pytest.raises(InferenceServerException) as error:
            attempt()
        assert "NOT_FOUND" in str(error.value.status()), error.value.message()
        assert_tells_nothing(error.value.message(), repository)
    assert client.is_model_ready(f"{name}.encoder", headers=headers) is False
    index = client.get_model_repository_index(headers=headers, as_json=True)["models"]
    assert {m["name"] for m in index} == {"tiny-uncond", "tiny-vae"}
    if key:
        with pytest.raises(InferenceServerException, match="API key"):
            client.load_model(name)


def test_grpc_load_of_a_good_name_loads(server) -> None:
    _, grpc_address, key = server
    client = triton.InferenceServerClient(grpc_address)
    headers = {"authorization": f"bearer {key}"} if key else None  # the scheme is case-insensitive
    client.load_model("tiny-uncond", headers=headers)
    assert client.is_model_ready("tiny-uncond.encoder", headers=headers)


# Path characters, the ones that separate, escape or end names among them.
PATH_PIECES = [*"aZ9.-_~/\\%:@!$&'()*+,;= ", "\x00", "\n", "é", "..", "%2F", "%2E", "%00", "%5C"]
PATH_NAMES = st.lists(st.sampled_from(PATH_PIECES), min_size=1, max_size=40).map("".join)


def test_fuzzed_names_on_the_repository_routes_are_4xx_and_tell_nothing(server, repository: Path) -> None:
    address, _, key = server

    @given(name=PATH_NAMES, action=st.sampled_from(["load", "unload"]))
    @settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def probe(name: str, action: str) -> None:
        path = f"/v2/repository/models/{quote(name, safe='%')}/{action}"
        status, text = call(address, "POST", path, key)
        assert 400 <= status < 500, (path, status, text[:200])
        assert_tells_nothing(text, repository)

    probe()
    status, text = call(address, "POST", "/v2/repository/index", key)
    assert {e["name"] for e in json.loads(text)} == {"tiny-uncond", "tiny-vae"}


def test_failure_reasons_name_package_files_not_paths(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "m" / "1"
    error = RuntimeError(f"[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from {folder}/encoder.onnx failed")
    assert failure_reason(error, folder, tmp_path / "models") == (
        "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from m/1/encoder.onnx failed"
    )
    missing = FileNotFoundError(2, "No such file or directory", str(folder / "manifest.json"))
    assert failure_reason(missing, folder, tmp_path / "models") == "No such file or directory: manifest.json"
