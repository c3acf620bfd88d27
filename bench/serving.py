"""Serving under load, measured against a real uvicorn process on loopback (like Triton's perf_analyzer).

Prints, for encode, decode and sample, p50/p90/p99 latency and throughput at several concurrencies;
then, with 32 clients each encoding one image, the mean size of the batches the service formed and
the server's CPU time per request (read from /proc for the server process only, so the load
generator's share of the CPU does not count) minus the model's own CPU time per image at that
batch size, measured in-process; that run is repeated and its median reported.

    python -m bench.serving [--model mnist-vqvae] [--seconds 10] [--concurrency 1 4 16 64] [--repeats 5]
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import httpx
import numpy as np
import onnxruntime as ort
import uvloop

from contract.images import encode_png
from service.config import Settings
from service.registry import Registry
from tools.local_server import serving

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def histogram(url: str, name: str, model: str, graph: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram for one model and graph."""
    text = httpx.get(f"{url}/metrics").text
    values = []
    for part in ("sum", "count"):
        pattern = rf'^{name}_{part}{{graph="{graph}",model="{model}"}} (\S+)$'
        found = re.search(pattern, text, re.MULTILINE)
        values.append(float(found.group(1)) if found else 0.0)
    return values[0], values[1]


def digit_png() -> bytes:
    return encode_png(np.random.default_rng(0).integers(0, 256, (28, 28)))


def post(url: str, path: str, body: bytes, content_type: str) -> bytes:
    """One prepared HTTP/1.1 POST, sent as is on a keep-alive connection."""
    head = f"POST {path} HTTP/1.1\r\nhost: {httpx.URL(url).netloc.decode()}\r\ncontent-type: {content_type}\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


def png_upload(boundary: str = "latentgen-bench") -> tuple[bytes, str]:
    """One digit PNG as a multipart/form-data body (the field `images`) and its content type."""
    head = f'--{boundary}\r\ncontent-disposition: form-data; name="images"; filename="d.png"\r\n'
    body = f"{head}content-type: image/png\r\n\r\n".encode() + digit_png() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def requests_for(url: str, model: str, grid: tuple[int, int], conditional: bool) -> dict[str, bytes]:
    codes = json.dumps({"codes": [np.zeros(grid, int).tolist()]}).encode()
    sample = json.dumps({"n": 1, "seed": 0} | ({"labels": [0]} if conditional else {})).encode()
    route = f"/v1/models/{model}"
    return {
        "encode": post(url, f"{route}/encode", *png_upload()),
        "decode": post(url, f"{route}/decode", codes, "application/json"),
        "sample": post(url, f"{route}/sample", sample, "application/json"),
    }


async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Reads one response (the service always sends content-length); returns its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    body = await reader.readexactly(int(re.search(rb"\ncontent-length: *(\d+)", head, re.IGNORECASE).group(1)))
    return int(head[9:12]), body


Answered = Callable[[int, bytes, float], None]  # (status, body, latency in seconds) of each response


async def closed_loop(
    url: str, request: bytes, concurrency: int, seconds: float, answered: Answered | None = None
) -> tuple[list[float], dict[int, int]]:
    """`concurrency` clients on their own keep-alive connections, each sending its next request as soon as the
    last one is answered; `answered` sees every response. Raw asyncio streams rather than httpx: the load
    generator shares the machine's cores with the server, and httpx's connection pool costs far more CPU per
    request at 64 connections."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    address = httpx.URL(url)
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(address.host, address.port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                status, body = await answer(reader)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if answered is not None:
                    answered(status, body, latencies[-1])
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, statuses


def model_cpu_per_image(model_id: str, batch: int) -> float:
    """CPU seconds per image of the encoder alone at this batch size, with the service's session settings
    (the least of three timed blocks: the machine's noise only ever adds)."""
    registry = Registry(Settings(MAX_BATCH_SIZE=1))
    registry.load()
    model = registry.get(model_id)
    images = np.random.default_rng(0).random((batch, *model.manifest.image_shape), dtype=np.float32)
    session: ort.InferenceSession = model.sessions["encoder"]
    blocks = []
    for _ in range(4):
        started = time.process_time()
        for _ in range(100):
            session.run(None, {"image": images})
        blocks.append((time.process_time() - started) / (100 * batch))
    return min(blocks[1:])  # the first block warms up


class EncodeLoad(NamedTuple):
    overhead: float  # server CPU seconds per request minus the encoder's own per image at the formed batch
    rate: float  # answered requests per second
    p99: float  # seconds


def encode_overhead(url: str, server: subprocess.Popen, model: str, request: bytes, seconds: float) -> EncodeLoad:
    """32 clients each encoding one image: prints the formed batch size, the server's CPU per request and the
    p99 latency; returns that CPU time minus the encoder's own per image at the formed batch size, the rate and
    the p99."""
    before_sum, before_count = histogram(url, "latentgen_batch_size", model, "encoder")
    cpu_before = cpu_seconds(server.pid)
    latencies, statuses = uvloop.run(closed_loop(url, request, 32, seconds))
    cpu_used = cpu_seconds(server.pid) - cpu_before
    after_sum, after_count = histogram(url, "latentgen_batch_size", model, "encoder")
    mean_batch = (after_sum - before_sum) / max(after_count - before_count, 1)
    per_request = cpu_used / sum(statuses.values())
    per_image = model_cpu_per_image(model, max(1, round(mean_batch)))
    load = EncodeLoad(per_request - per_image, len(latencies) / seconds, float(np.percentile(latencies, 99)))
    print(
        f"{sum(statuses.values()):>9} {str(statuses):>14} {mean_batch:>7.1f} {per_request * 1000:>13.3f}"
        f" {per_image * 1000:>13.3f} {load.overhead * 1000:>15.3f} {load.p99 * 1000:>8.1f}"
    )
    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-vqvae")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--repeats", type=int, default=5, help="runs of the 32-client encode measurement")
    args = parser.parse_args()
    with serving(capture=False, LOG_LEVEL="warning") as (url, server):
        description = httpx.get(f"{url}/v1/models/{args.model}").raise_for_status().json()
        grid = tuple(description["manifest"]["latent_shape"][1:])
        requests = requests_for(url, args.model, grid, description["manifest"]["prior"]["conditional"])
        print(
            f"model {args.model} v{description['version']} on {description['provider']}; {os.cpu_count()} CPUs; "
            f"{args.seconds:g} s per row; closed loop"
        )
        print(f"{'operation':<10}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}  statuses")
        for operation, request in requests.items():
            for concurrency in args.concurrency:
                latencies, statuses = uvloop.run(closed_loop(url, request, concurrency, args.seconds))
                p50, p90, p99 = np.percentile(np.array(latencies) * 1000, [50, 90, 99])
                rate = len(latencies) / args.seconds
                print(f"{operation:<10}{concurrency:>8}{rate:>9.0f}{p50:>9.1f}{p90:>9.1f}{p99:>9.1f}  {statuses}")

        print(f"\n32 clients encoding one image each, {args.seconds:g} s per run; CPU times in ms")
        header = ("requests", 9), ("statuses", 14), ("batch", 7), ("server/request", 13), ("model/image", 13)
        print(" ".join(f"{name:>{width}}" for name, width in header), f"{'HTTP path':>15} {'p99 ms':>8}")
        overheads = [
            encode_overhead(url, server, args.model, requests["encode"], args.seconds).overhead
            for _ in range(args.repeats)
        ]
        print(f"median: server CPU per request minus model {np.median(overheads) * 1000:.3f} ms")


if __name__ == "__main__":
    main()
