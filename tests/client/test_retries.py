"""Retries on 429/503 honour Retry-After (capped), give up after `retries`, and never retry other errors."""

import email.utils
import time

import httpx
import pytest

from client import Client, InvalidInputError, ModelUnavailableError, OverloadedError, ServiceError

OVERLOADED = {"error": {"code": "overloaded", "message": "queue full"}}


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that gives these answers in turn and records the requests it saw."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return httpx.MockTransport(handle), seen


def overloaded(status: int = 503, retry_after: str | None = "0") -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json=OVERLOADED, headers=headers)


MODELS = httpx.Response(200, json={"models": [{"model": "m"}], "unavailable": []})


def test_503_with_retry_after_is_retried_until_it_succeeds() -> None:
    transport, seen = scripted(overloaded(retry_after="0"), overloaded(429, retry_after="2"), MODELS)
    waits: list[float] = []
    with Client(transport=transport, sleep=waits.append, api_key="secret") as client:
        assert client.models() == [{"model": "m"}]
    assert len(seen) == 3 and waits == [0.0, 2.0]
    assert all(r.headers["x-api-key"] == "secret" for r in seen)


def test_retry_after_is_capped_and_dates_are_understood() -> None:
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    answers = overloaded(retry_after="600"), overloaded(retry_after=later), overloaded(retry_after=None), MODELS
    transport, _ = scripted(*answers)
    waits: list[float] = []
    with Client(transport=transport, sleep=waits.append, max_wait=5) as client:
        client.models()
    assert waits == [5, 5, 2.0]  # capped, capped, exponential backoff without a Retry-After


def test_it_gives_up_after_the_retries_with_the_services_error() -> None:
    transport, seen = scripted(overloaded())
    client = Client(transport=transport, retries=2, sleep=lambda s: None)
    with client, pytest.raises(OverloadedError) as error:
        client.models()
    assert len(seen) == 3 and error.value.status == 503 and error.value.code == "overloaded"


@pytest.mark.parametrize(
    "answer, raised",
    [
        (httpx.Response(422, json={"error": {"code": "invalid_input", "message": "no"}}), InvalidInputError),
        (httpx.Response(503, json={"error": {"code": "model_unavailable", "message": "x"}}), ModelUnavailableError),
    ],
)
def test_other_errors_are_not_retried(answer: httpx.Response, raised: type) -> None:
    transport, seen = scripted(answer)
    client = Client(transport=transport, sleep=lambda s: None)
    with client, pytest.raises(raised):
        client.models()
    assert len(seen) == 1


def test_an_answer_that_is_not_the_services_json_still_maps_by_status() -> None:
    transport, _ = scripted(httpx.Response(502, text="<html>bad gateway</html>"))
    client = Client(transport=transport)
    with client, pytest.raises(ServiceError) as error:
        client.models()
    assert error.value.status == 502 and error.value.code == "http_502" and "bad gateway" in error.value.message
