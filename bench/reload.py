"""A new model version under load: closed-loop clients encode one PNG at a time on the bundled mnist-vqvae while
a new version is dropped into MODELS_DIR (MODEL_CONTROL=poll) the way the exporter writes one (into a hidden
folder, then renamed into place), and later the old version's folder is removed. Prints, for each stretch of the
run (before the new version is written, while it is verified, opened and warmed up, after it takes traffic, after
the old one is gone), the requests answered, their statuses, which versions answered and the p50 and p99 latency.

    python -m bench.reload [--seconds 15] [--clients 32]
"""

import argparse
import asyncio
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import uvloop

from bench.serving import closed_loop, png_upload, post
from tools.local_server import serving

ROOT = Path(__file__).resolve().parents[1]
VERSION = re.compile(rb'"version":\s*(\d+)')


@dataclass
class Answer:
    finished: float  # perf_counter seconds
    latency: float
    status: int
    version: int | None


def add_version(folder: Path, source: Path, version: int) -> None:
    """A copy of `source` as `version`, written under a hidden name and renamed into place, as the exporter does."""
    staging = folder / f".{version}.partial"
    shutil.copytree(source, staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    (staging / "manifest.json").write_text(json.dumps({**manifest, "version": version}))
    staging.rename(folder / str(version))


async def run(url: str, folder: Path, old: int, clients: int, seconds: float) -> tuple[list[Answer], dict[str, float]]:
    request = post(url, "/v1/models/mnist-vqvae/encode", *png_upload())
    answers: list[Answer] = []
    events = {"start": time.perf_counter()}

    def answered(status: int, body: bytes, latency: float) -> None:
        found = VERSION.search(body)
        answers.append(Answer(time.perf_counter(), latency, status, int(found.group(1)) if found else None))

    traffic = asyncio.create_task(closed_loop(url, request, clients, seconds, answered))
    await asyncio.sleep(seconds / 4)
    events["written"] = time.perf_counter()  # the copy runs in a thread, beside the load, as an operator's would
    await asyncio.to_thread(add_version, folder, folder / str(old), old + 1)
    events["renamed"] = time.perf_counter()
    await asyncio.sleep(seconds / 4)
    events["removed"] = time.perf_counter()
    await asyncio.to_thread(shutil.rmtree, folder / str(old))
    await traffic
    return answers, events


def report(answers: list[Answer], events: dict[str, float], new: int) -> None:
    first_new = min((a.finished for a in answers if a.version == new), default=float("inf"))
    stretches = [
        ("before the new version", events["start"], events["written"]),
        ("copying, verifying, warming up", events["written"], first_new),
        ("the new version serving", first_new, events["removed"]),
        ("the old version removed", events["removed"], float("inf")),
    ]
    print(f"{'stretch':<32}{'seconds':>8}{'answers':>9}{'p50 ms':>8}{'p99 ms':>8}  statuses, versions")
    for name, start, end in stretches:
        chosen = [a for a in answers if start <= a.finished < end]
        if not chosen:
            print(f"{name:<32}{'-':>8}")
            continue
        latencies = np.array([a.latency for a in chosen]) * 1000
        statuses = {s: sum(a.status == s for a in chosen) for s in sorted({a.status for a in chosen})}
        versions = {v: sum(a.version == v for a in chosen) for v in sorted({a.version or 0 for a in chosen})}
        span = min(end, max(a.finished for a in chosen)) - start
        p50, p99 = np.percentile(latencies, [50, 99])
        print(f"{name:<32}{span:>8.1f}{len(chosen):>9}{p50:>8.1f}{p99:>8.1f}  {statuses}, {versions}")
    failed = sum(a.status != 200 for a in answers)
    print(f"all: {len(answers)} answers, {failed} not 200; the new version answered from "
          f"{first_new - events['renamed']:+.2f} s after its folder was renamed into place")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    source = max((ROOT / "exported_models" / "mnist-vqvae").iterdir(), key=lambda p: int(p.name))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "mnist-vqvae"
        shutil.copytree(source, folder / source.name)
        old = int(source.name)
        settings = {"MODELS_DIR": scratch, "MODEL_CONTROL": "poll", "POLL_SECONDS": 0.5, "LOG_LEVEL": "warning"}
        with serving(capture=False, GRPC_PORT=0, **settings) as (url, _):
            answers, events = uvloop.run(run(url, folder, old, args.clients, args.seconds))
    print(f"mnist-vqvae version {old}, then {old + 1}; {args.clients} clients; polling every 0.5 s")
    report(answers, events, old + 1)


if __name__ == "__main__":
    main()
