"""The server's memory under the largest requests its limits allow, and what it gives back when idle.

Starts `python -m service` on the bundled models, warms it up, then replays rounds of the largest requests
(MAX_IMAGES images to encode as files and as arrays, MAX_IMAGES code grids to decode, MAX_SAMPLES samples as
one PNG grid and as arrays, an Open Inference Protocol batch), several clients at a time; then idles. Prints
the resident set size after warm-up, its peak (VmHWM) and after idling, from /proc for the server alone.

    python -m bench.memory [--rounds 3] [--clients 4] [--idle 10] [ENV=VALUE ...]

ENV=VALUE pairs are passed to the server (e.g. MEMORY_RELEASE=0 to measure without the allocator settings).

`--photo SIDE` measures instead one SIDE x SIDE photo encoded at its own size by a size-free model, then its code
grid decoded: the peak for each, above the warm server, e.g. under several TILE_SIZE settings:

    python -m bench.memory --photo 4096 TILE_SIZE=512
"""

import argparse
import base64
import io
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

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


def photo_jpeg(side: int) -> bytes:
    """A smooth side x side colour JPEG (low-frequency noise, enlarged), as a camera's photo compresses."""
    coarse = np.random.default_rng(side).integers(0, 256, (side // 64, side // 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(coarse).resize((side, side), Image.BICUBIC).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def peak_above_warm(server: subprocess.Popen, url: str, path: str, request: dict) -> tuple[float, dict]:
    """(the peak RSS above the RSS before the request, MiB; the answer)."""
    before = status_kib(server.pid, "VmRSS")
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")
    with httpx.Client(base_url=url, timeout=1800) as client:
        response = client.post(path, **request)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    return (status_kib(server.pid, "VmHWM") - before) / KIB, response.json()


def measure_photo(side: int, model: str, env: dict[str, str]) -> dict[str, float]:
    """The peak above the warm server of encoding one side x side photo, and of decoding its codes."""
    settings = {"LOG_LEVEL": "warning", **env}
    with serving(capture=False, **settings) as (url, server):
        small = {"files": [("images", ("warm.jpg", photo_jpeg(256), "image/jpeg"))]}
        peak_above_warm(server, url, f"/v1/models/{model}/reconstruct", small)  # every graph warm at a size
        warm = status_kib(server.pid, "VmRSS") / KIB
        upload = {"files": [("images", ("photo.jpg", photo_jpeg(side), "image/jpeg"))]}
        encode, answer = peak_above_warm(server, url, f"/v1/models/{model}/encode", upload)
        decode, _ = peak_above_warm(server, url, f"/v1/models/{model}/decode", {"json": {"codes": answer["codes"]}})
    return {"warm": warm, "encode": encode, "decode": decode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--idle", type=float, default=10)
    parser.add_argument("--limit", type=int, default=256, help="MAX_IMAGES and MAX_SAMPLES")
    parser.add_argument("--photo", type=int, help="measure one photo of this side instead (see above)")
    parser.add_argument("--model", default="cifar10-vqvae", help="with --photo: a size-free model")
    parser.add_argument("env", nargs="*", help="ENV=VALUE settings for the server")
    args = parser.parse_args()
    env = dict(pair.split("=", 1) for pair in args.env)
    if args.photo:
        found = measure_photo(args.photo, args.model, env)
        print(
            f"{args.model}, one {args.photo}x{args.photo} photo ({' '.join(args.env) or 'defaults'}): server RSS "
            f"{found['warm']:.0f} MiB warm; peak above it: encode {found['encode']:.0f} MiB, decode of its codes "
            f"{found['decode']:.0f} MiB"
        )
        return
    found = measure(args.rounds, args.clients, args.idle, args.limit, env)
    print(f"server RSS, MiB ({' '.join(args.env) or 'defaults'}; {args.clients} clients, {args.rounds} rounds):")
    print(
        f"  after warm-up {found['warm']:.0f}, peak {found['peak']:.0f}, right after {found['after']:.0f}, "
        f"after {args.idle:g} s idle {found['idle']:.0f} ({found['idle'] / found['warm'] - 1:+.0%} of warm-up); "
        f"replay took {found['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
