"""A client for the latentgen service: `Client` for Python, `python -m client` on the command line."""

from client.api import DEFAULT_URL, Client, Encoding, Images
from contract.errors import (
    InvalidInputError,
    ModelUnavailableError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    ServiceError,
    UnauthorizedError,
    UnreachableError,
    UnsupportedMediaTypeError,
)

__all__ = [
    "DEFAULT_URL",
    "Client",
    "Encoding",
    "Images",
    "InvalidInputError",
    "ModelUnavailableError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "ServiceError",
    "UnauthorizedError",
    "UnreachableError",
    "UnsupportedMediaTypeError",
]
