"""What every peer runs: the bundled mnist-vqvae encoder in onnxruntime on the CPU with the service's own session
settings (one intra-op thread on 2 cores, no spinning), and PNG bytes -> the encoder's input. Imported by the peer
apps inside their own virtual environments; nothing of the project's packages is imported there."""

import io
import os

import numpy as np
import onnxruntime as ort
from PIL import Image

ENCODER = os.environ["PEER_ENCODER"]  # exported_models/mnist-vqvae/<version>/encoder.onnx


def session() -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("PEER_THREADS", "1"))
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(ENCODER, sess_options=options, providers=["CPUExecutionProvider"])


def pixels(png: bytes) -> np.ndarray:
    """One 28x28 greyscale PNG -> (1, 28, 28) float32 in [0, 1]."""
    return (np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32) / 255.0)[None]


def codes(model: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    """(N, 1, 28, 28) -> (N, 7, 7) int64 codes."""
    return model.run(["codes"], {"image": images})[0]
