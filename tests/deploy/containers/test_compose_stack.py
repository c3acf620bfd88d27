"""docker compose for real: three CPU replicas behind HAProxy, under a bounded load through the balancer.

Every request is answered and the answers spread over all replicas; a replica killed mid-load costs at most the
requests in flight on it, and none once the balancer has marked it down; a rolling restart of every replica, one
at a time, costs nothing. The counts are printed (pytest -s) for docs/deployment.md.
"""

import os
import re
import subprocess
import threading
import time
import uuid
from collections import Counter

import httpx
import numpy as np
import pytest

from tests.deploy.containers.conftest import DOCKER, ROOT, docker
from tools.local_server import free_port

CLIENTS = 8
LB_IMAGE = "latentgen-haproxy:local"  # deploy/local-engine.sh; a registry's haproxy image works as well


def compose(project: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    command = ["docker-compose", "-p", project, "-f", str(ROOT / "docker-compose.yml"), "--profile", "cpu", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


class Load:
    """CLIENTS closed-loop clients decoding one code grid each through the balancer, each answer timestamped."""

    def __init__(self, url: str):
        self.url, self.stop, self.answers = url, threading.Event(), []
        self.body = {"codes": np.zeros((1, 7, 7), int).tolist()}
        self.threads = [threading.Thread(target=self.client) for _ in range(CLIENTS)]

    def client(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                try:
                    response = http.post(f"{self.url}/v1/models/mnist-vqvae/decode", json=self.body)
                    outcome = response.status_code, response.headers.get("x-served-by")
                except httpx.HTTPError as error:
                    outcome = type(error).__name__, None
                self.answers.append((time.monotonic(), *outcome))

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def failures(self, since: float = 0.0) -> list:
        return [answer for answer in self.answers if answer[0] >= since and answer[1] != 200]


def replicas(project: str) -> list[str]:
    listed = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                    "--filter", "label=com.docker.compose.service=service-cpu")  # fmt: skip
    return listed.stdout.split()


def balancer_errors(project: str) -> list[str]:
    """HAProxy's log lines for requests not cleanly answered: a status other than 200, or a termination state other
    than ---- (a 200 whose body was cut short logs its status): the state says which side gave up."""
    listed = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                    "--filter", "label=com.docker.compose.service=lb")  # fmt: skip
    logs = docker("logs", *listed.stdout.split(), check=False)
    clean = re.compile(r" 200 \d+ - - ---- ")
    return [line for line in (logs.stdout + logs.stderr).splitlines() if '"POST' in line and not clean.search(line)]


def wait_ready_inside(container: str, timeout: float = 120) -> None:
    probe = "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/health/ready', timeout=2)"
    deadline = time.monotonic() + timeout
    while docker("exec", container, "python", "-c", probe, check=False).returncode:
        assert time.monotonic() < deadline, f"{container} did not become ready"
        time.sleep(1)


@pytest.fixture
def stack(cpu_image: str):
    if subprocess.run(["which", "docker-compose"], capture_output=True).returncode:
        pytest.skip("Debian's docker-compose is not installed")
    if docker("image", "inspect", LB_IMAGE, check=False).returncode:
        pytest.skip(f"no {LB_IMAGE} image (sudo bash deploy/local-engine.sh makes it)")
    docker("tag", cpu_image, "latentgen:cpu")
    project, port = f"latentgen{uuid.uuid4().hex[:8]}", free_port()
    env = {**os.environ, "PORT": str(port), "LB_IMAGE": LB_IMAGE, "DOCKER_HOST": os.environ.get("DOCKER_HOST", "")}
    env = {k: v for k, v in env.items() if v} | {"PATH": f"{os.path.dirname(DOCKER)}:{os.environ['PATH']}"}
    # One replica first: Docker seeds a new named volume from the image as its first container is created, and
    # three created at once race on that copy ("mkdir ... file exists").
    compose(project, env, "up", "-d", "--no-build", "service-cpu", "lb")
    compose(project, env, "up", "-d", "--no-build", "--scale", "service-cpu=3", "service-cpu", "lb")
    try:
        for container in replicas(project):
            wait_ready_inside(container)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while {httpx.get(f"{url}/health/ready", timeout=5).headers.get("x-served-by") for _ in range(12)} != {
            f"cpu{i}" for i in (1, 2, 3)
        }:
            assert time.monotonic() < deadline, "the balancer did not find all three replicas"
            time.sleep(1)
        yield project, url
    finally:
        compose(project, env, "down", "-v", "-t", "5")


def test_the_balancer_spreads_load_survives_a_replica_s_death_and_a_rolling_restart(stack) -> None:
    project, url = stack
    with Load(url) as steady:
        time.sleep(8)
    served = Counter(server for _, status, server in steady.answers if status == 200)
    assert not steady.failures() and len(served) == 3, served

    with Load(url) as killing:
        time.sleep(3)
        victim = replicas(project)[0]
        killed = time.monotonic()
        docker("kill", victim)  # SIGKILL: no drain, whatever it held is lost
        time.sleep(10)
    lost = killing.failures()
    late = killing.failures(since=killed + 5)  # HAProxy has marked it down by then (error-limit 1, checks each 5 s)
    assert len(lost) <= CLIENTS and not late, (lost, late, balancer_errors(project)[-10:])
    docker("start", victim)
    wait_ready_inside(victim)

    with Load(url) as rolling:
        for container in replicas(project):
            docker("restart", "-t", "35", container)  # SIGTERM: it drains, then starts again
            wait_ready_inside(container)
            time.sleep(6)  # the balancer's next health check sees it up again
    assert not rolling.failures(), (rolling.failures()[:5], balancer_errors(project)[-10:])
    print(
        f"\ncompose, 3 CPU replicas, {CLIENTS} clients: steady {len(steady.answers)} requests, 0 failed, per replica "
        f"{sorted(served.values())}; one replica killed: {len(killing.answers)} requests, {len(lost)} failed "
        f"(none later than 5 s after the kill); rolling restart of all 3: {len(rolling.answers)} requests, 0 failed"
    )
