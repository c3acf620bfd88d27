"""One API-key rule for HTTP headers and gRPC metadata: what passes on one front passes on the other."""

import pytest
import tritonclient.grpc as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from contract.errors import UnauthorizedError
from service.auth import check_api_key
from tests.conftest import TinyPipeline
from tests.service.conftest import make_client
from tools.local_server import free_port, serving

KEY = "s3cret"
ACCEPTED = [
    {"x-api-key": KEY},
    {"authorization": f"Bearer {KEY}"},
    {"authorization": f"bearer {KEY}"},
    {"authorization": f"BEARER  {KEY} "},
    {"x-api-key": KEY, "authorization": "Basic nothing"},
]
REFUSED = [
    {},
    {"x-api-key": "wrong"},
    {"x-api-key": KEY + "x"},
    {"x-api-key": ""},
    {"authorization": f"Basic {KEY}"},
    {"authorization": f"Bearer{KEY}"},
    {"authorization": KEY},
    {"x-api-key": "wrong", "authorization": f"Bearer {KEY}"},  # a wrong key is not rescued by another header
]


@pytest.mark.parametrize("headers", ACCEPTED)
def test_the_rule_accepts(headers: dict) -> None:
    check_api_key(KEY, headers)


@pytest.mark.parametrize("headers", REFUSED)
def test_the_rule_refuses(headers: dict) -> None:
    with pytest.raises(UnauthorizedError, match="API key"):
        check_api_key(KEY, headers)


def test_no_key_set_lets_everything_through() -> None:
    check_api_key("", {})
    check_api_key("", {"x-api-key": "anything"})


@pytest.fixture(scope="module")
def fronts(tiny_pipeline: TinyPipeline):
    port = free_port()
    settings = {"MODELS_DIR": tiny_pipeline.models, "GRPC_PORT": port, "API_KEY": KEY, "LOG_LEVEL": "warning"}
    with serving(**settings), make_client(tiny_pipeline, API_KEY=KEY) as http:
        yield http, triton.InferenceServerClient(f"127.0.0.1:{port}")


def grpc_allows(client: triton.InferenceServerClient, headers: dict) -> bool:
    try:
        return client.is_server_ready(headers=headers)
    except InferenceServerException as error:
        assert "UNAUTHENTICATED" in str(error.status()) and "API key" in error.message()
        return False


@pytest.mark.parametrize("headers", ACCEPTED + REFUSED)
def test_http_and_grpc_agree(fronts: tuple[TestClient, triton.InferenceServerClient], headers: dict) -> None:
    http, grpc_client = fronts
    expected = headers in ACCEPTED
    assert (http.get("/health/ready", headers=headers).status_code == 200) is expected
    assert grpc_allows(grpc_client, headers) is expected
    assert http.get("/health/live").status_code == 200 and grpc_client.is_server_live()  # liveness stays open
