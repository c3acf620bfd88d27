"""The real thing: `python -m service` under uvicorn on a free loopback port, driven by httpx and
by the standard Open Inference Protocol client (tritonclient)."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import TinyPipeline
from tests.service.conftest import UNCONDITIONAL, digit_png
from tools.local_server import serving


@pytest.fixture(scope="module")
def server(tiny_pipeline: TinyPipeline) -> Iterator[tuple[str, subprocess.Popen]]:
    with serving(MODELS_DIR=tiny_pipeline.models, INTRA_OP_THREADS=1) as running:
        yield running


def test_v1_over_a_real_socket(server: tuple[str, subprocess.Popen]) -> None:
    url, _ = server
    response = httpx.post(
        f"{url}/v1/models/{UNCONDITIONAL}/encode", files=[("images", ("a.png", digit_png(), "image/png"))]
    )
    assert response.status_code == 200 and np.array(response.json()["codes"]).shape == (1, 7, 7)
    assert response.headers["x-request-id"]


def test_open_inference_protocol_with_tritonclient(server: tuple[str, subprocess.Popen]) -> None:
    url, _ = server
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(f"{UNCONDITIONAL}.encoder")
    metadata = client.get_model_metadata(f"{UNCONDITIONAL}.prior")
    assert metadata["inputs"] == [{"name": "codes", "datatype": "INT64", "shape": [-1, 7, 7]}]

    images = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    for binary in (True, False):
        tensor = triton.InferInput("image", list(images.shape), "FP32")
        tensor.set_data_from_numpy(images, binary_data=binary)
        outputs = [
            triton.InferRequestedOutput("codes", binary_data=binary),
            triton.InferRequestedOutput("z_e", binary_data=binary),
        ]
        result = client.infer(f"{UNCONDITIONAL}.encoder", [tensor], outputs=outputs)
        assert result.as_numpy("codes").shape == (3, 7, 7) and result.as_numpy("z_e").shape == (3, 4, 7, 7)
    v1 = httpx.post(f"{url}/v1/models/{UNCONDITIONAL}/encode", json={"arrays": images[:, 0].tolist()}).json()["codes"]
    assert result.as_numpy("codes").tolist() == v1

    codes = triton.InferInput("codes", [1, 7, 7], "INT64")
    codes.set_data_from_numpy(np.full((1, 7, 7), 99, dtype=np.int64))
    with pytest.raises(InferenceServerException, match=r"\[0, 16\)"):
        client.infer(f"{UNCONDITIONAL}.prior", [codes])
    with pytest.raises(InferenceServerException, match="no graph"):
        client.infer(f"{UNCONDITIONAL}.nothing", [codes])


def test_sigterm_stops_the_server_cleanly(server: tuple[str, subprocess.Popen]) -> None:
    _, process = server
    process.send_signal(signal.SIGTERM)
    # uvicorn drains, shuts the app down, then re-raises the signal so that a supervisor sees it.
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    log = process.stdout.read()
    assert "Application shutdown complete" in log and "Finished server process" in log
    assert '"message": "request"' in log  # one JSON line per request
    assert "Traceback" not in log


def test_bad_settings_stop_the_server_with_their_names() -> None:
    """A zero batch size would leave every batch empty and every request waiting; the server refuses to start."""
    env = {**os.environ, "MAX_BATCH_SIZE": "0", "POLL_SECONDS": "-1", "TRIM_AFTER_SECONDS": "soon"}
    finished = subprocess.run([sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1
    assert finished.stderr.startswith("invalid settings: MAX_BATCH_SIZE='0'")
    assert "POLL_SECONDS='-1'" in finished.stderr and "TRIM_AFTER_SECONDS='soon'" in finished.stderr
