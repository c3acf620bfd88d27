"""Bulk encode, the CLI's path: requests of 64 images (PNGs in JSON, as `latentgen encode` sends them) to the
service, against the same encoder run in-process by onnxruntime at the same batch with the service's thread
settings. The service is driven twice: by httpx, the client the CLI uses, and by a raw keep-alive socket (the
service alone, without the client's own CPU on the same cores). The three alternate, one at a time, so that none
takes another's cores; each round prints images per second of each and the ratios, and the last line their medians.

    python -m bench.bulk [--model mnist-vqvae] [--batch 64] [--rounds 5] [--seconds 5] [--in-flight 1]
"""

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import onnxruntime as ort

from bench.serving import closed_loop, post
from client.images import images_payload
from service.config import Settings
from service.registry import Registry
from tools.local_server import serving


def images_per_second(encode_batch: Callable[[], None], batch: int, seconds: float) -> float:
    encode_batch()  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        encode_batch()
        done += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-vqvae")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--in-flight", type=int, default=1, help="requests kept in flight (the CLI keeps one)")
    args = parser.parse_args()
    if min(args.batch, args.rounds, args.in_flight) < 1 or args.seconds <= 0:
        parser.error("--batch, --rounds, --in-flight and --seconds must be positive")
    # The service's own encoder session, the package and settings it serves with (no batcher: the graph alone).
    registry = Registry(Settings(MAX_BATCH_SIZE=1))
    registry.load()
    model = registry.get(args.model)
    channels, height, width = model.manifest.image_shape
    pixels = np.random.default_rng(0).integers(0, 256, (args.batch, height, width, channels), dtype=np.uint8)
    body = json.dumps(images_payload(pixels[..., 0] if channels == 1 else pixels)).encode()
    feed = {"image": pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255}
    print(f"{args.model} version {model.version}, {args.batch} images per request, {args.in_flight} in flight, "
          f"onnxruntime {ort.__version__}")  # fmt: skip

    ratios: dict[str, list[float]] = {"httpx": [], "raw": []}
    with (
        serving(capture=False, LOG_LEVEL="warning") as (url, _),
        httpx.Client(base_url=url, timeout=120) as http,
        ThreadPoolExecutor(args.in_flight) as pool,
    ):
        route = f"/v1/models/{args.model}/encode"
        headers = {"content-type": "application/json"}

        def one_request(_: object = None) -> None:
            http.post(route, content=body, headers=headers).raise_for_status()

        def through_service() -> None:
            list(pool.map(one_request, range(args.in_flight)))

        def over_raw_sockets() -> float:
            started = time.perf_counter()
            latencies, statuses = asyncio.run(closed_loop(url, raw_request, args.in_flight, args.seconds))
            if set(statuses) != {200}:
                raise RuntimeError(f"the service answered {statuses}")
            return len(latencies) * args.batch / (time.perf_counter() - started)

        raw_request = post(url, route, body, "application/json")
        over_raw_sockets()  # warm-up
        for round_ in range(1, args.rounds + 1):
            alone = images_per_second(lambda: model.run("encoder", feed), args.batch, args.seconds)
            served = images_per_second(through_service, args.batch * args.in_flight, args.seconds)
            raw = over_raw_sockets()
            ratios["httpx"].append(served / alone)
            ratios["raw"].append(raw / alone)
            print(f"round {round_}: in-process {alone:.0f} images/s; service via httpx {served:.0f} images/s "
                  f"({served / alone:.2f}x), via a raw socket {raw:.0f} images/s ({raw / alone:.2f}x)")  # fmt: skip
    print(f"median: the service at {statistics.median(ratios['httpx']):.2f}x in-process onnxruntime via httpx, "
          f"{statistics.median(ratios['raw']):.2f}x via a raw socket")  # fmt: skip


if __name__ == "__main__":
    main()
