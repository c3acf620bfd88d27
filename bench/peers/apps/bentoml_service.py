"""BentoML serving the encoder with its adaptive batching: POST /encode, multipart field `image` (a PNG file) ->
[[...codes...]]."""

import os
import sys

import bentoml
import numpy as np
from PIL.Image import Image

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


@bentoml.service(workers=1, threads=1)
class Encoder:
    def __init__(self) -> None:
        self.model = common.session()

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def encode(self, images: list[Image]) -> list[list[list[int]]]:
        batch = np.stack([(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)[None] for image in images])
        return common.codes(self.model, batch).tolist()
