"""KServe's Python ModelServer serving the encoder: the Open Inference Protocol, POST /v2/models/encoder/infer.
It has no batching of its own (KServe batches in a separate agent beside the pod), so each request runs alone.
Its per-request log lines are off, as ours are."""

import logging
import os
import sys

import kserve
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


class Encoder(kserve.Model):
    def __init__(self) -> None:
        super().__init__("encoder")
        self.model = common.session()
        self.ready = True

    async def predict(self, payload: InferRequest, headers: dict | None = None, response_headers: dict | None = None):
        images = payload.inputs[0].as_numpy().astype(np.float32)
        codes = common.codes(self.model, images)
        output = InferOutput(name="codes", shape=list(codes.shape), datatype="INT64", data=codes.ravel().tolist())
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[output])


if __name__ == "__main__":
    port, grpc_port = int(os.environ["PEER_PORT"]), int(os.environ["PEER_GRPC_PORT"])
    server = kserve.ModelServer(http_port=port, grpc_port=grpc_port, workers=1, enable_latency_logging=False)
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([Encoder()])
