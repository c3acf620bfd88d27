"""The service's errors. Each carries its HTTP status and a stable machine-readable code; the
app turns any of them into `{"error": {"code": ..., "message": ...}}`. Plain Python, so the
registry and the inference layer raise them without knowing about HTTP frameworks."""


class ServiceError(Exception):
    status = 500
    code = "internal_error"
    headers: dict[str, str] = {}

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequestError(ServiceError):
    status, code = 400, "bad_request"


class InvalidInputError(ServiceError):
    status, code = 422, "invalid_input"


class NotFoundError(ServiceError):
    status, code = 404, "not_found"


class UnauthorizedError(ServiceError):
    status, code = 401, "unauthorized"


class PayloadTooLargeError(ServiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaTypeError(ServiceError):
    status, code = 415, "unsupported_media_type"


class ModelUnavailableError(ServiceError):
    status, code = 503, "model_unavailable"


class ClientDisconnectedError(ServiceError):
    status, code = 499, "client_closed_request"  # nginx's code: nobody is left to read the answer


class OverloadedError(ServiceError):
    status, code = 503, "overloaded"
    headers = {"Retry-After": "1"}


def error_payload(path: str, code: str, message: str) -> dict:
    """The JSON body of an error; under /v2/ the Open Inference Protocol's plain-string form."""
    if path.startswith("/v2/"):
        return {"error": message}  # what KServe/Triton clients parse
    return {"error": {"code": code, "message": message}}
