"""`latentgen-bulk encode` on real images: images per second against the package's encoder alone in a tight
in-process loop at the same batch size, 2 workers against 1, and against `latentgen encode` over HTTP to the service;
then a run killed halfway (SIGKILL) and resumed, compared row by row with an uninterrupted one.

The images are the first N CIFAR-10 training images written as PNGs into class folders (the realistic source: files
to read and decode). Each pipeline run is a fresh `python -m latentgen_bulk` process (Ray started and stopped with
it, as a user runs it), timed whole; its peak memory is the largest resident set of its process tree (the driver,
Ray's own processes and the encoder actors), sampled from /proc; its pace once running, from the arrival of its
first shard to that of its last, leaves out the fixed cost of starting.

    python -m bench.bulk_pipeline --data ../shared/data/cifar10.npz --images 20000 [--rounds 2]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from contract.images import decode_image, encode_png
from latentgen_bulk.package import open_package, package_folder
from tools.local_server import ROOT, serving

BUNDLED = ROOT / "exported_models"
MODEL = "cifar10-vqvae"


def write_folder(data: Path, count: int, folder: Path) -> None:
    with np.load(data) as arrays:
        images, labels = arrays["x_train"][:count], arrays["y_train"][:count]
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        (folder / str(int(label))).mkdir(parents=True, exist_ok=True)
        (folder / str(int(label)) / f"{i:05d}.png").write_bytes(encode_png(pixels))


def tree_rss_kib(pid: int) -> int:
    """Resident set of a process and all its descendants, KiB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total


def bulk_command(folder: Path, out: Path, workers: int, batch_size: int) -> list[str]:
    return [sys.executable, "-m", "latentgen_bulk", "encode", str(folder), "--model", MODEL, "--models-dir",
            str(BUNDLED), "--out", str(out), "--workers", str(workers), "--batch-size", str(batch_size),
            "--quiet"]  # fmt: skip


def timed_pipeline(command: list[str], out: Path, shard_rows: int = 1000) -> tuple[float, float, float]:
    """(seconds, peak MiB of the process tree, images/s once running) of one run to the end. The rate once running
    counts the images of every shard after the first, over the time from the first shard's arrival to the last's:
    the pipeline's pace without Python and Ray starting and the actors opening the package."""
    started, peak, arrivals = time.monotonic(), 0, {}
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL, start_new_session=True)
    while process.poll() is None:
        peak = max(peak, tree_rss_kib(process.pid))
        for shard in out.glob("train-*.parquet"):
            arrivals.setdefault(shard.name, time.monotonic())
        time.sleep(0.1)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}")
    ended = time.monotonic()
    for shard in out.glob("train-*.parquet"):  # any that came after the last look
        arrivals.setdefault(shard.name, ended)
    times = sorted(arrivals.values())
    rate = (len(times) - 1) * shard_rows / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return ended - started, peak / 1024, rate


def in_process(folder: Path, batch_size: int) -> float:
    """Seconds for the package's encoder alone over every image, already decoded, batch by batch."""
    package = open_package(package_folder(BUNDLED, MODEL))
    files = sorted(folder.rglob("*.png"))
    pixels = np.stack([decode_image(f.read_bytes(), (3, 32, 32)).pixels for f in files])
    started = time.monotonic()
    for start in range(0, len(pixels), batch_size):
        package.encode(pixels[start : start + batch_size])
    return time.monotonic() - started


def over_http(folder: Path, out: Path, batch_size: int) -> float:
    with serving(LOG_LEVEL="warning") as (url, _):
        command = [sys.executable, "-m", "client", "encode", str(folder), "--url", url, "--model", MODEL, "--out",
                   str(out), "--batch-size", str(batch_size), "--quiet"]  # fmt: skip
        started = time.monotonic()
        subprocess.run(command, cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
        return time.monotonic() - started


def rows(out: Path) -> list[dict]:
    return [row for shard in sorted(out.glob("train-*.parquet")) for row in pq.read_table(shard).to_pylist()]


def killed_and_resumed(folder: Path, out: Path, batch_size: int) -> tuple[int, int]:
    """(shards there when killed, shards in all) of a run SIGKILLed once half its shards were written, then resumed."""
    command = bulk_command(folder, out, 1, batch_size)
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL, start_new_session=True)
    total = None
    while process.poll() is None:
        plan = out / "run.json"
        if total is None and plan.exists():
            spec = json.loads(plan.read_text())
            total = -(-spec["items"] // spec["shard_rows"])
        if total and len(list(out.glob("train-*.parquet"))) >= total // 2:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    at_kill = len(list(out.glob("train-*.parquet")))
    subprocess.run(command, cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
    return at_kill, total or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10.npz")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder, work = Path(scratch) / "images", Path(scratch)
        write_folder(args.data, args.images, folder)
        runs: dict[str, list[float]] = {"in-process encoder": [], "pipeline, 1 worker": [], "pipeline, 2 workers": [],
                                        "latentgen encode over HTTP": []}  # fmt: skip
        peaks: dict[str, float] = {}
        rates: dict[str, list[float]] = {}  # images/s once running
        for r in range(args.rounds):  # in alternation, so that each ratio sees the same minutes of the machine
            runs["in-process encoder"].append(in_process(folder, args.batch_size))
            for workers in (1, 2):
                name = f"pipeline, {workers} worker{'s' if workers > 1 else ''}"
                out = work / f"out-{workers}-{r}"
                seconds, peak, rate = timed_pipeline(bulk_command(folder, out, workers, args.batch_size), out)
                runs[name].append(seconds)
                rates.setdefault(name, []).append(rate)
                peaks[name] = max(peaks.get(name, 0), peak)
            runs["latentgen encode over HTTP"].append(over_http(folder, work / f"http-{r}.npy", args.batch_size))
        at_kill, total = killed_and_resumed(folder, work / "resumed", args.batch_size)
        same = rows(work / "resumed") == rows(work / "out-1-0")
    print(f"{args.images} CIFAR-10 training images as PNG files, {MODEL}, batch size {args.batch_size}, "
          f"{os.cpu_count()} cores; median of {args.rounds} rounds, alternated")  # fmt: skip
    print("| run | seconds | images/s | vs in-process encoder | once running: images/s | vs encoder | peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = float(np.median(runs["in-process encoder"]))
    for name, seconds in runs.items():
        middle = float(np.median(seconds))
        peak = f"{peaks[name]:.0f}" if name in peaks else ""
        rate = float(np.median(rates[name])) if name in rates else None
        running = f"{rate:.0f} | {rate * base / args.images:.2f}" if rate else " | "
        print(f"| {name} | {middle:.1f} | {args.images / middle:.0f} | {base / middle:.2f} | {running} | {peak} |")
    print(f"killed with {at_kill} of {total} shards written, then resumed: rows equal to an uninterrupted run: {same}")


if __name__ == "__main__":
    main()
