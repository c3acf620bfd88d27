"""The GPU serving image (onnxruntime-gpu with CUDA and cuDNN as NVIDIA's wheels) on a machine without a GPU: asked
for CUDA, it serves on the CPU and says so; asked to require a GPU, it stays unready and says why."""

import time

import httpx
import pytest

from tests.deploy.containers.conftest import build, docker


@pytest.fixture(scope="module")
def gpu_image() -> str:
    return build("latentgen:gpu-test", "--build-arg", "VARIANT=gpu")


def test_the_gpu_image_carries_onnxruntime_gpu_and_cuda_from_wheels(gpu_image: str) -> None:
    probe = (
        "import onnxruntime as ort; print(ort.get_device(), 'CUDAExecutionProvider' in ort.get_available_providers())"
    )
    found = docker("run", "--rm", "--network", "none", gpu_image, "python", "-c", probe).stdout.split()
    assert found == ["GPU", "True"]


def test_without_a_gpu_it_falls_back_to_the_cpu_and_reports_it(gpu_image: str, run_container) -> None:
    cuda = ("-e", "PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider", "--read-only", "--tmpfs", "/tmp")
    container = run_container(gpu_image, *cuda)
    ready = httpx.get(f"{container.url}/health/ready").json()
    assert ready["status"] == "ready" and set(ready["models"].values()) == {"CPUExecutionProvider"}
    assert httpx.get(f"{container.url}/v1/models/mnist-vqvae").json()["provider"] == "CPUExecutionProvider"


def test_require_gpu_keeps_it_unready_with_the_reason(gpu_image: str, run_container) -> None:
    strict = ("-e", "PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider", "-e", "REQUIRE_GPU=1")
    container = run_container(gpu_image, *strict, ready=False)
    deadline = time.monotonic() + 120
    while True:  # the models are loaded once /v1/models answers (readiness itself will not turn 200)
        try:
            if httpx.get(f"{container.url}/v1/models", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, container.logs()[-2000:]
        time.sleep(1)
    ready = httpx.get(f"{container.url}/health/ready")
    assert ready.status_code == 503 and "REQUIRE_GPU" in ready.json()["reason"]
