"""LitServe serving the encoder with its dynamic batching (max_batch_size, batch_timeout): POST /predict with
{"image": base64 PNG} -> {"codes": [[...]]}."""

import base64
import os
import sys

import litserve as ls
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


class Encoder(ls.LitAPI):
    def __init__(self) -> None:
        super().__init__(max_batch_size=64, batch_timeout=float(os.environ.get("PEER_BATCH_TIMEOUT", "0.002")))

    def setup(self, device: str) -> None:
        self.model = common.session()

    def decode_request(self, request: dict) -> np.ndarray:
        return common.pixels(base64.b64decode(request["image"]))

    def batch(self, inputs: list) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return common.codes(self.model, images)

    def unbatch(self, output: np.ndarray) -> list:
        return list(output)

    def encode_response(self, output: np.ndarray) -> dict:
        return {"codes": output.tolist()}


if __name__ == "__main__":
    server = ls.LitServer(
        Encoder(),
        accelerator="cpu",
        max_batch_size=64,
        batch_timeout=float(os.environ.get("PEER_BATCH_TIMEOUT", "0.002")),
    )
    server.run(port=int(os.environ["PEER_PORT"]), num_api_servers=1, generate_client_file=False)
