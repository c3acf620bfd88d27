"""Container tests: the images built from this checkout and run on a real Docker engine (marker `container`).

They need an engine and the base images (`deploy/local-engine.sh` makes a machine without a registry able to);
without one they are skipped, saying so. Containers reach only this machine: user networks, ports published on
127.0.0.1.
"""

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tools.local_server import free_port

ROOT = Path(__file__).resolve().parents[3]
DOCKER = shutil.which("docker", path="/usr/bin") or shutil.which("docker") or "docker"
BUILD_ENV = {**os.environ, "DOCKER_BUILDKIT": "1"}


def engine_ready() -> bool:
    try:
        return subprocess.run([DOCKER, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(item.fspath).parents]
    for item in mine:
        item.add_marker(pytest.mark.container)
    if mine and not engine_ready():
        skip = pytest.mark.skip(reason="no Docker engine answers `docker info` (sudo bash deploy/local-engine.sh)")
        for item in mine:
            item.add_marker(skip)


def docker(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, env=BUILD_ENV, **kwargs)
    if check and result.returncode:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def build(tag: str, *args: str) -> str:
    docker("build", "--network", "host", "-t", tag, *args, str(ROOT), timeout=1800)
    return tag


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not become ready")


def inspect(container: str, template: str) -> str:
    return docker("inspect", "--format", template, container).stdout.strip()


@pytest.fixture(scope="session")
def cpu_image() -> str:
    return build("latentgen:cpu-test", "--build-arg", "VARIANT=cpu")


@pytest.fixture(scope="session")
def network() -> Iterator[str]:
    name = f"latentgen-test-{uuid.uuid4().hex[:8]}"
    docker("network", "create", name)
    yield name
    docker("network", "rm", name, check=False)


class Running:
    """A container started for a test, removed afterwards; `url` is its published port on 127.0.0.1."""

    def __init__(self, name: str, url: str):
        self.name, self.url = name, url

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr


@pytest.fixture
def run_container(network: str) -> Iterator:
    started: list[str] = []

    def start(image: str, *args: str, command: tuple[str, ...] = (), ready: bool = True) -> Running:
        name, port = f"latentgen-{uuid.uuid4().hex[:8]}", free_port()
        docker(
            "run", "-d", "--name", name, "--network", network, "-p", f"127.0.0.1:{port}:8000", *args, image, *command
        )
        started.append(name)
        container = Running(name, f"http://127.0.0.1:{port}")
        if ready:
            try:
                wait_ready(container.url)
            except TimeoutError:
                raise AssertionError(container.logs()[-3000:]) from None
        return container

    yield start
    for name in started:
        docker("rm", "-f", name, check=False)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
