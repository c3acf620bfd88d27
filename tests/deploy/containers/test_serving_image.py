"""The CPU serving image, built from this checkout and run: what `docker run latentgen:cpu` promises."""

import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from tests.conftest import TinyPipeline
from tests.deploy.containers.conftest import docker, inspect
from tests.service.conftest import digit_png

HARDENED = ("--read-only", "--tmpfs", "/tmp")


def test_it_serves_the_bundled_models_hardened(cpu_image: str, run_container) -> None:
    container = run_container(cpu_image, *HARDENED, "--health-interval", "2s", "--health-start-period", "1s")
    ready = httpx.get(f"{container.url}/health/ready").json()
    assert ready["status"] == "ready" and set(ready["models"].values()) == {"CPUExecutionProvider"}
    m = f"{container.url}/v1/models/mnist-vqvae"
    codes = httpx.post(f"{m}/encode", files={"images": ("d.png", digit_png(), "image/png")}).json()["codes"]
    assert np.asarray(codes).shape == (1, 7, 7)
    assert len(httpx.post(f"{m}/decode", json={"codes": codes}).json()["images"]) == 1
    sampled = httpx.post(f"{m}/sample", json={"n": 2, "seed": 0}, timeout=60).json()
    assert np.asarray(sampled["codes"]).shape == (2, 7, 7)
    assert docker("exec", container.name, "id", "-u").stdout.strip() == "10001"  # not root
    written = docker("exec", container.name, "touch", "/app/anything", check=False)
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    deadline = time.monotonic() + 60
    while inspect(container.name, "{{.State.Health.Status}}") != "healthy":
        assert time.monotonic() < deadline, inspect(container.name, "{{json .State.Health}}")
        time.sleep(1)


def test_a_mounted_models_folder_replaces_the_bundled_packages(
    cpu_image: str, run_container, tiny_pipeline: TinyPipeline
) -> None:
    models = tiny_pipeline.models
    container = run_container(cpu_image, *HARDENED, "-v", f"{models}:/app/exported_models:ro")
    listed = {m["model"] for m in httpx.get(f"{container.url}/v1/models").json()["models"]}
    assert listed == {p.name for p in Path(models).iterdir() if p.is_dir()} and "mnist-vqvae" not in listed


def test_a_corrupt_package_in_the_mount_leaves_the_others_serving(
    cpu_image: str, run_container, tiny_pipeline: TinyPipeline, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_pipeline.models, models)
    (models / "tiny-vae" / "1" / "decoder.onnx").write_bytes(b"not an onnx graph")
    container = run_container(cpu_image, *HARDENED, "-v", f"{models}:/app/exported_models:ro")
    listed = httpx.get(f"{container.url}/v1/models").json()
    assert "tiny-vqvae" in {m["model"] for m in listed["models"]}
    assert [u["id"] for u in listed["unavailable"]] == ["tiny-vae"]


def test_sigterm_lets_a_long_sample_finish_refuses_new_connections_and_exits_zero(
    cpu_image: str, run_container, tiny_pipeline: TinyPipeline
) -> None:
    settings = ("-e", "MAX_SAMPLES=20000", "-e", "MAX_QUEUE_ROWS=100000", "-e", "MAX_BATCH_SIZE=20000")
    mount = ("-v", f"{tiny_pipeline.models}:/app/exported_models:ro")
    container = run_container(cpu_image, *HARDENED, *mount, *settings)
    answers: list = []

    def long_sample() -> None:
        body = {"n": 20000, "seed": 0}
        answers.append(httpx.post(f"{container.url}/v1/models/tiny-uncond/sample", json=body, timeout=120).status_code)

    client = threading.Thread(target=long_sample)
    client.start()
    time.sleep(1.0)  # the sampling runs now
    stopped = time.monotonic()
    stopping = threading.Thread(target=docker, args=("stop", "-t", "35", container.name))
    stopping.start()
    time.sleep(0.5)
    probe = "import socket; socket.create_connection(('127.0.0.1', 8000), timeout=2)"
    refused = docker("exec", container.name, "python", "-c", probe, check=False)
    assert refused.returncode != 0 and "Connection refused" in refused.stderr  # the listening socket is closed
    client.join(120)
    stopping.join(60)
    assert answers == [200]
    assert inspect(container.name, "{{.State.ExitCode}}") == "0" and time.monotonic() - stopped < 35
    assert "Traceback" not in container.logs()
