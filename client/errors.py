"""The exceptions the client raises: one class per error code the service answers with.

Each carries the HTTP status, the service's machine-readable code and its message, so callers
can branch on the class (`except NotFoundError`) or on `error.code`.
"""


class ServiceError(Exception):
    """The service answered with an error, or could not be reached (status 0)."""

    code = "error"

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None):
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


class UnauthorizedError(ServiceError):
    code = "unauthorized"


class NotFoundError(ServiceError):
    code = "not_found"


class PayloadTooLargeError(ServiceError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(ServiceError):
    code = "unsupported_media_type"


class InvalidInputError(ServiceError):
    code = "invalid_input"


class ModelUnavailableError(ServiceError):
    code = "model_unavailable"


class OverloadedError(ServiceError):
    """429 or 503 that was still there after every retry."""

    code = "overloaded"


class UnreachableError(ServiceError):
    """No HTTP answer at all: connection refused or reset, or a timeout."""

    code = "unreachable"


BY_CODE = {
    cls.code: cls
    for cls in (
        UnauthorizedError,
        NotFoundError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        InvalidInputError,
        ModelUnavailableError,
        OverloadedError,
    )
}
BY_STATUS = {
    401: UnauthorizedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: InvalidInputError,
    429: OverloadedError,
    503: OverloadedError,
}


def error_for(status: int, code: str | None, message: str, request_id: str | None = None) -> ServiceError:
    """The exception for an error answer: by the service's code first, else by the HTTP status."""
    cls = BY_CODE.get(code or "") or BY_STATUS.get(status, ServiceError)
    return cls(status, code or f"http_{status}", message, request_id)
