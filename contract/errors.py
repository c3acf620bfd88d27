"""The project's errors, one class per machine-readable code, shared by the service and its client.

The service raises them (the registry and the inference layer know nothing of HTTP frameworks) and answers
`{"error": {"code": ..., "message": ...}}` with the class's status; the client turns an answer back into the
class of its code, so both sides branch on the same classes (`except NotFoundError`) and codes (`error.code`).
"""


class ServiceError(Exception):
    """An error answer. `status` 0 means no HTTP answer came at all (the client's UnreachableError)."""

    status = 500
    code = "internal_error"
    headers: dict[str, str] = {}

    def __init__(self, message: str, status: int | None = None, code: str | None = None, request_id: str = ""):
        self.message, self.request_id = message, request_id
        if status is not None:
            self.status = status
        if code:
            self.code = code
        super().__init__(f"{self.status} {self.code}: {message}" if self.status else f"{self.code}: {message}")


class BadRequestError(ServiceError):
    status, code = 400, "bad_request"


class UnauthorizedError(ServiceError):
    status, code = 401, "unauthorized"


class NotFoundError(ServiceError):
    status, code = 404, "not_found"


class PayloadTooLargeError(ServiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaTypeError(ServiceError):
    status, code = 415, "unsupported_media_type"


class InvalidInputError(ServiceError):
    status, code = 422, "invalid_input"


class ClientDisconnectedError(ServiceError):
    status, code = 499, "client_closed_request"  # nginx's code: nobody is left to read the answer


class ModelUnavailableError(ServiceError):
    status, code = 503, "model_unavailable"


class OverloadedError(ServiceError):
    """The queue is full or the service is shutting down (503, or a proxy's 429): retry after a while."""

    status, code = 503, "overloaded"
    headers = {"Retry-After": "1"}


class UnreachableError(ServiceError):
    """No HTTP answer at all: connection refused or reset, or a timeout (the client's)."""

    status, code = 0, "unreachable"


ERRORS: dict[str, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        ServiceError,
        BadRequestError,
        UnauthorizedError,
        NotFoundError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        InvalidInputError,
        ClientDisconnectedError,
        ModelUnavailableError,
        OverloadedError,
        UnreachableError,
    )
}  # the table of codes
BY_STATUS: dict[int, type[ServiceError]] = {cls.status: cls for cls in ERRORS.values() if cls.status} | {
    429: OverloadedError,  # a proxy's rate limit
    503: OverloadedError,  # without a code: a proxy's or load balancer's
}


def error_for(status: int, code: str | None, message: str, request_id: str = "") -> ServiceError:
    """The exception for an error answer: by its code first, else by the HTTP status."""
    cls = ERRORS.get(code or "") or BY_STATUS.get(status, ServiceError)
    return cls(message, status=status, code=code or f"http_{status}", request_id=request_id)
