"""The API key check, one rule for every front: HTTP headers (middleware.py) and gRPC metadata (grpc_server.py)."""

import secrets
from collections.abc import Mapping

from contract.errors import UnauthorizedError

OPEN_PATHS = {"/health/live", "/v2/health/live"}  # liveness never needs the key


def bearer_token(authorization: str) -> str:
    """The token of `Authorization: Bearer <token>`; the scheme's name is case-insensitive (RFC 7235)."""
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def check_api_key(expected: str, headers: Mapping[str, str]) -> None:
    """Nothing when no key is set or the request carries it (`x-api-key`, or `authorization: Bearer`; `headers` by
    lower-case name, as ASGI and gRPC give them); UnauthorizedError otherwise. Compared in constant time."""
    if not expected:
        return
    given = headers.get("x-api-key") or bearer_token(headers.get("authorization", ""))
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise UnauthorizedError("missing or wrong API key (X-API-Key, or Authorization: Bearer)")
