import base64
import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from contract.images import encode_png
from service.config import Settings
from service.main import create_app
from tests.conftest import TinyPipeline

CONDITIONAL, UNCONDITIONAL = "tiny-vqvae", "tiny-uncond"


def digit_png(seed: int = 0) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, (28, 28)))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decode_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def make_client(tiny_pipeline: TinyPipeline, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(MODELS_DIR=tiny_pipeline.models, **settings)))


@pytest.fixture(scope="module")
def client(tiny_pipeline: TinyPipeline) -> Iterator[TestClient]:
    with make_client(tiny_pipeline) as test_client:
        yield test_client
