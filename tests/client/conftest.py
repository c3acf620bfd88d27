from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from client import Client
from tests.conftest import TinyPipeline
from tools.local_server import serving


@pytest.fixture(scope="package")
def url(tiny_pipeline: TinyPipeline) -> Iterator[str]:
    """A real `python -m service` over the tiny models, on a free loopback port."""
    with serving(MODELS_DIR=tiny_pipeline.models, INTRA_OP_THREADS=1) as (address, _):
        yield address


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client(url, timeout=60) as c:
        yield c


def digits(n: int, seed: int = 0) -> np.ndarray:
    """(n, 28, 28) float pixels in [0, 1]: a bright bar on black, somewhere different in each."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.float32)
    for image in images:
        top, left = rng.integers(2, 14, 2)
        image[top : top + 12, left : left + 4] = 1.0
    return images


def digit_image(seed: int = 0) -> Image.Image:
    return Image.fromarray((digits(1, seed)[0] * 255).astype(np.uint8), mode="L")
