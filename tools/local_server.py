"""Running `python -m service` as a real process on a free loopback port (tests and benchmarks)."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 60, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}: {output}")
        try:
            if httpx.get(url + "/health/ready", timeout=1, headers=headers).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server did not become ready")


def start(argv: list[str], env: dict[str, str], url: str, capture: bool = True, cwd: Path = ROOT) -> subprocess.Popen:
    """Starts argv in cwd (the repository root unless told) and waits until url answers /health/ready (with the
    API key when the environment sets one)."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_ready(url, process, headers={"x-api-key": env["API_KEY"]} if env.get("API_KEY") else None)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


@contextmanager
def serving(capture: bool = True, **settings: object) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m service` with these settings as environment variables; killed on exit if still running."""
    port = free_port()
    env = {**os.environ, **{k: str(v) for k, v in settings.items()}}
    argv = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    process = start(argv, env, url, capture)
    try:
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
