"""MLServer serving the encoder as a custom runtime, with its adaptive batching (model-settings.json's
max_batch_size and max_batch_time): the Open Inference Protocol, POST /v2/models/encoder/infer."""

import os
import sys

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


class EncoderRuntime(MLModel):
    async def load(self) -> bool:
        self.model = common.session()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        codes = common.codes(self.model, images)
        output = NumpyCodec.encode_output("codes", codes)
        return InferenceResponse(model_name=self.name, outputs=[output])
