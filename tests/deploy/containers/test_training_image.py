"""The training image trains and exports into a mounted folder, and the serving image serves what it exported.

PyPI's torch for Linux is a CUDA build of several GB; the test builds the image with this machine's CPU build of
torch instead, offered to pip by a local server of the wheels in /opt/wheels (the Dockerfile's PIP_FIND_LINKS), and
is skipped where no such wheel lies. The real image keeps PyPI's CUDA build.
"""

import functools
import http.server
import threading
from pathlib import Path

import httpx
import pytest

from tests.deploy.containers.conftest import build, docker

WHEELS = Path("/opt/wheels")


@pytest.fixture(scope="module")
def wheel_server(tmp_path_factory: pytest.TempPathFactory):
    """This machine's CPU torch wheels over HTTP, with a constraints file that picks them (pip would otherwise
    prefer PyPI's 2.13.0+cu130 to 2.13.0+cpu)."""
    wheels = sorted(WHEELS.glob("torch-*+cpu-*.whl"))
    if not wheels:
        pytest.skip(f"no CPU build of torch in {WHEELS}: the training image would download PyPI's CUDA build")
    served = tmp_path_factory.mktemp("wheels")
    for wheel in wheels:
        (served / wheel.name).symlink_to(wheel)
    (served / "constraints.txt").write_text(f"torch=={wheels[-1].name.split('-')[1]}\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_the_training_image_exports_what_the_serving_image_serves(
    wheel_server: str, cpu_image: str, run_container, tmp_path: Path
) -> None:
    local = (
        "--build-arg",
        f"PIP_FIND_LINKS={wheel_server}",
        "--build-arg",
        f"PIP_CONSTRAINT={wheel_server}constraints.txt",
    )
    image = build("latentgen:train-cpu-test", "--target", "train", *local)
    version = docker("run", "--rm", "--entrypoint", "python", image, "-c", "import torch; print(torch.__version__)")
    assert version.stdout.strip().endswith("+cpu")
    runs, models = tmp_path / "runs", tmp_path / "models"
    for folder in (runs, models):
        folder.mkdir()
        folder.chmod(0o777)  # the image runs as uid 10001
    mounts = ("-v", f"{runs}:/app/runs", "-v", f"{models}:/app/exported_models")
    recipe = ("recipe", "recipes/mnist-vae-2d.sh", "--toy", "--set", "RUNS=/app/runs")
    trained = docker(
        "run", "--rm", "--network", "none", *mounts, image, *recipe, "--set", "MODELS=/app/exported_models"
    )
    assert (models / "mnist-vae-2d" / "1" / "manifest.json").is_file(), trained.stdout[-2000:]
    container = run_container(cpu_image, "--read-only", "--tmpfs", "/tmp", "-v", f"{models}:/app/exported_models:ro")
    listed = httpx.get(f"{container.url}/v1/models").json()["models"]
    assert [m["model"] for m in listed] == ["mnist-vae-2d"] and listed[0]["manifest"]["training"]["dataset"]
    sampled = httpx.post(f"{container.url}/v1/models/mnist-vae-2d/sample", json={"n": 3, "seed": 1}).json()
    assert len(sampled["images"]) == 3
