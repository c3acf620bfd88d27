"""What every request goes through, as one plain ASGI middleware (no per-request task or copy):
a request id, the optional API key, the body-size limit, HEAD as GET, metrics, one JSON log line, and
memory handed back after a large request (memory.py)."""

import json
import logging
import random
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.errors import PayloadTooLargeError, ServiceError, UnauthorizedError
from service.auth import OPEN_PATHS, check_api_key
from service.config import Settings
from service.memory import MemoryRelease
from service.metrics import LATENCY, REQUESTS

log = logging.getLogger("service.access")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
READ_HEADERS = {b"x-request-id", b"x-api-key", b"authorization", b"content-length"}


def error_payload(path: str, code: str, message: str) -> dict:
    """The JSON body of an error; under /v2/ the Open Inference Protocol's plain-string form."""
    if path.startswith("/v2/"):
        return {"error": message}  # what KServe/Triton clients parse
    return {"error": {"code": code, "message": message}}


def without_body(send: Send) -> Send:
    """A send that passes the headers (Content-Length included) and drops the body."""

    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head


class RequestContext:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app, self.settings = app, settings
        self.memory = MemoryRelease(settings.TRIM_AFTER_BYTES, settings.TRIM_AFTER_SECONDS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        if method == "HEAD":  # answered as GET without the body (RFC 9110 9.3.2): uptime monitors probe with it
            scope, send = {**scope, "method": "GET"}, without_body(send)
        # Servers give header names in lower case (ASGI); only the few read here are decoded.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in READ_HEADERS}
        sent = headers.get("x-request-id", "")
        # Ids need to be unique, not secret: no system call per request (uuid4 reads the OS's randomness).
        request_id = sent if REQUEST_ID.match(sent) else f"{random.getrandbits(128):032x}"
        status = 500
        response_started = False
        moved = [0]  # bytes received and sent

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            else:
                moved[0] += len(message.get("body", b""))
            await send(message)

        try:
            if scope["path"] not in OPEN_PATHS:
                check_api_key(self.settings.API_KEY, headers)
            receive = self.limit_body(headers, receive, moved)
            await self.app(scope, receive, send_with_id)
        except ServiceError as error:  # raised before the app ran; the app's handlers answer the rest
            if response_started:
                raise
            await self.send_error(send_with_id, scope["path"], error)
        finally:
            seconds = time.perf_counter() - started
            self.memory.after(moved[0], seconds)
            self.record(scope, method, status, request_id, seconds)

    def too_large_message(self) -> str:
        return f"request body exceeds the limit of {self.settings.MAX_BODY_BYTES} bytes"

    def limit_body(self, headers: dict[str, str], receive: Receive, moved: list[int]) -> Receive:
        limit = self.settings.MAX_BODY_BYTES
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(self.too_large_message())
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            moved[0] += len(message.get("body", b""))
            if received > limit:  # chunked uploads declare no length; count what arrives
                raise PayloadTooLargeError(self.too_large_message())
            return message

        return counting_receive

    async def send_error(self, send: Send, path: str, error: ServiceError) -> None:
        body = json.dumps(error_payload(path, error.code, error.message)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if isinstance(error, UnauthorizedError):
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def record(self, scope: Scope, method: str, status: int, request_id: str, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        REQUESTS.labels(route, method, str(status)).inc()
        LATENCY.labels(route).observe(seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        fields = {
            "request_id": request_id,
            "method": method,
            "path": scope["path"],
            "route": route,
            "status": status,
            "ms": round(seconds * 1000, 2),
        }
        log.info("request", extra={"fields": fields})
