"""A new model version under load, then an unload: closed-loop clients encode one PNG at a time on the bundled
mnist-vqvae while a new version is dropped into MODELS_DIR (MODEL_CONTROL=poll) the way the exporter writes one
(into a hidden folder, then renamed into place), and later the old version's folder is removed; then, on a server
with MODEL_CONTROL=explicit, the model is unloaded by name under the same load. Prints, for each stretch of each
run, the requests answered, their statuses, which versions answered and the p50 and p99 latency.

    python -m bench.reload [--seconds 15] [--clients 32]
"""

import argparse
import asyncio
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
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


class Traffic:
    """The closed-loop encode load, every answer kept with when it came and which version gave it."""

    def __init__(self, url: str, clients: int, seconds: float):
        self.answers: list[Answer] = []
        self.events = {"start": time.perf_counter()}
        request = post(url, "/v1/models/mnist-vqvae/encode", *png_upload())
        self.task = asyncio.create_task(closed_loop(url, request, clients, seconds, self.answered))

    def answered(self, status: int, body: bytes, latency: float) -> None:
        found = VERSION.search(body)
        self.answers.append(Answer(time.perf_counter(), latency, status, int(found.group(1)) if found else None))

    def mark(self, event: str) -> None:
        self.events[event] = time.perf_counter()

    def first(self, test: Callable[[Answer], bool]) -> float:
        return min((a.finished for a in self.answers if test(a)), default=float("inf"))


async def new_version(url: str, folder: Path, old: int, clients: int, seconds: float) -> Traffic:
    """A quarter in, version old + 1 is written in; halfway, version old's folder is removed."""
    traffic = Traffic(url, clients, seconds)
    await asyncio.sleep(seconds / 4)
    traffic.mark("written")  # the copy runs in a thread, beside the load, as an operator's would
    await asyncio.to_thread(add_version, folder, folder / str(old), old + 1)
    traffic.mark("renamed")
    await asyncio.sleep(seconds / 4)
    traffic.mark("removed")
    await asyncio.to_thread(shutil.rmtree, folder / str(old))
    await traffic.task
    return traffic


async def unload(url: str, clients: int, seconds: float) -> Traffic:
    """Halfway, the model is unloaded by name (MODEL_CONTROL=explicit)."""
    async with httpx.AsyncClient(base_url=url) as control:  # made first: making one stalls this loop for a while
        traffic = Traffic(url, clients, seconds)
        await asyncio.sleep(seconds / 2)
        traffic.mark("unload")
        (await control.post("/v2/repository/models/mnist-vqvae/unload")).raise_for_status()
        traffic.mark("unloaded")
        await traffic.task
    return traffic


def report(traffic: Traffic, stretches: list[tuple[str, float, float]]) -> None:
    print(f"{'stretch':<34}{'seconds':>8}{'answers':>9}{'p50 ms':>8}{'p99 ms':>8}  statuses, versions")
    for name, start, end in stretches:
        chosen = [a for a in traffic.answers if start <= a.finished < end]
        if not chosen:
            print(f"{name:<34}{'-':>8}")
            continue
        latencies = np.array([a.latency for a in chosen]) * 1000
        statuses = {s: sum(a.status == s for a in chosen) for s in sorted({a.status for a in chosen})}
        versions = {v: sum(a.version == v for a in chosen) for v in sorted({a.version for a in chosen} - {None})}
        span = min(end, max(a.finished for a in chosen)) - start
        p50, p99 = np.percentile(latencies, [50, 99])
        print(f"{name:<34}{span:>8.1f}{len(chosen):>9}{p50:>8.1f}{p99:>8.1f}  {statuses}, {versions}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    source = max((ROOT / "exported_models" / "mnist-vqvae").iterdir(), key=lambda p: int(p.name))
    old = int(source.name)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "mnist-vqvae"
        shutil.copytree(source, folder / source.name)
        settings = {"MODELS_DIR": scratch, "POLL_SECONDS": 0.5, "LOG_LEVEL": "warning", "GRPC_PORT": 0}
        with serving(capture=False, MODEL_CONTROL="poll", **settings) as (url, _):
            added = uvloop.run(new_version(url, folder, old, args.clients, args.seconds))
        with serving(capture=False, MODEL_CONTROL="explicit", **settings) as (url, _):
            removed = uvloop.run(unload(url, args.clients, args.seconds))

    print(f"mnist-vqvae version {old}, then {old + 1} written in (polling every 0.5 s); {args.clients} clients")
    events, first_new = added.events, added.first(lambda a: a.version == old + 1)
    report(
        added,
        [
            ("before the new version", events["start"], events["written"]),
            ("copying, verifying, warming up", events["written"], first_new),
            ("the new version serving", first_new, events["removed"]),
            ("the old version removed", events["removed"], float("inf")),
        ],
    )
    failed = sum(a.status != 200 for a in added.answers)
    print(f"all: {len(added.answers)} answers, {failed} not 200; the new version answered from "
          f"{first_new - events['renamed']:+.2f} s after its folder was renamed into place")  # fmt: skip

    print(f"\nthen mnist-vqvae unloaded by name (MODEL_CONTROL=explicit) halfway; {args.clients} clients")
    events, first_404 = removed.events, removed.first(lambda a: a.status == 404)
    report(
        removed,
        [
            ("before the unload", events["start"], events["unload"]),
            ("the unload call, to the first 404", events["unload"], first_404),
            ("after the first 404", first_404, float("inf")),
        ],
    )
    other = sum(a.status not in (200, 404) for a in removed.answers)
    late = sum(a.status == 200 and a.finished >= first_404 for a in removed.answers)
    print(f"all: {len(removed.answers)} answers, {other} neither 200 nor 404; {late} answered 200 after the first 404 "
          f"(in flight at the unload); the unload call took {events['unloaded'] - events['unload']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
