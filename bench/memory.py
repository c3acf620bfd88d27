"""The server's memory under the largest requests its limits allow, and what it gives back when idle.

Starts `python -m service` on the bundled models, warms it up, then replays rounds of the largest requests
(MAX_IMAGES images to encode as files and as arrays, MAX_IMAGES code grids to decode, MAX_SAMPLES samples as
one PNG grid and as arrays, an Open Inference Protocol batch), several clients at a time; then idles. Prints
the resident set size after warm-up, its peak (VmHWM) and after idling, from /proc for the server alone.

    python -m bench.memory [--rounds 3] [--clients 4] [--idle 10] [ENV=VALUE ...]

ENV=VALUE pairs are passed to the server (e.g. MEMORY_RELEASE=0 to measure without the allocator settings).
"""

import argparse
import base64
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from contract.images import encode_png
from tools.local_server import serving

KIB = 1024


def status_kib(pid: int, field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


def large_requests(url: str, limit: int) -> list[tuple[str, dict]]:
    """(path, httpx keyword arguments) of the largest request of each kind, for the bundled models."""
    rng = np.random.default_rng(0)
    pictures = [encode_png(rng.integers(0, 256, (28, 28), dtype=np.uint8)) for _ in range(limit)]
    arrays = rng.random((limit, 28, 28)).round(3).tolist()
    codes = rng.integers(0, 512, (limit, 7, 7)).tolist()
    image_tensor = {"name": "image", "datatype": "FP32", "shape": [limit, 1, 28, 28], "data": sum(arrays, [])}
    return [
        (
            "/v1/models/mnist-vqvae/encode",
            {"files": [("images", (f"{i}.png", p, "image/png")) for i, p in enumerate(pictures)]},
        ),
        ("/v1/models/mnist-vae/encode", {"json": {"images": [base64.b64encode(p).decode() for p in pictures]}}),
        ("/v1/models/mnist-vqvae/encode?include=z_e", {"json": {"arrays": arrays}}),
        ("/v1/models/mnist-vqvae/decode", {"json": {"codes": codes}}),
        ("/v1/models/mnist-vqvae/decode?format=array", {"json": {"codes": codes}}),
        ("/v1/models/mnist-vqvae/sample", {"json": {"n": limit, "seed": 0}, "headers": {"accept": "image/png"}}),
        ("/v1/models/mnist-vae/sample?format=array", {"json": {"n": limit, "seed": 0}}),
        ("/v2/models/mnist-vqvae.encoder/infer", {"json": {"inputs": [image_tensor]}}),
    ]


def replay(url: str, requests: list[tuple[str, dict]], rounds: int, clients: int) -> list[int]:
    """Every request `rounds` times, `clients` at a time; returns the status codes."""
    with httpx.Client(base_url=url, timeout=600) as client, ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda job: client.post(job[0], **job[1]).status_code, requests * rounds))


def measure(rounds: int, clients: int, idle: float, limit: int, env: dict[str, str]) -> dict[str, float]:
    settings = {"LOG_LEVEL": "warning", "MAX_IMAGES": limit, "MAX_SAMPLES": limit, **env}
    with serving(capture=False, **settings) as (url, server):
        requests = large_requests(url, limit)
        replay(url, requests[:1], 1, 1)
        replay(url, [(p, {"json": {"n": 4, "seed": 1}}) for p in ("/v1/models/mnist-vqvae/sample",)], 2, 2)
        warm = status_kib(server.pid, "VmRSS")
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
        started = time.monotonic()
        statuses = replay(url, requests, rounds, clients)
        seconds = time.monotonic() - started
        peak = status_kib(server.pid, "VmHWM")
        after = status_kib(server.pid, "VmRSS")
        time.sleep(idle)
        idled = status_kib(server.pid, "VmRSS")
    if set(statuses) != {200}:
        raise RuntimeError(f"not every large request succeeded: {sorted(set(statuses))}")
    return {"warm": warm / KIB, "peak": peak / KIB, "after": after / KIB, "idle": idled / KIB, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--idle", type=float, default=10)
    parser.add_argument("--limit", type=int, default=256, help="MAX_IMAGES and MAX_SAMPLES")
    parser.add_argument("env", nargs="*", help="ENV=VALUE settings for the server")
    args = parser.parse_args()
    env = dict(pair.split("=", 1) for pair in args.env)
    found = measure(args.rounds, args.clients, args.idle, args.limit, env)
    print(f"server RSS, MiB ({' '.join(args.env) or 'defaults'}; {args.clients} clients, {args.rounds} rounds):")
    print(
        f"  after warm-up {found['warm']:.0f}, peak {found['peak']:.0f}, right after {found['after']:.0f}, "
        f"after {args.idle:g} s idle {found['idle']:.0f} ({found['idle'] / found['warm'] - 1:+.0%} of warm-up); "
        f"replay took {found['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
