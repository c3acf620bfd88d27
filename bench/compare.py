"""The HTTP path's CPU per encode request, the rate and the p99 latency at 32 clients (as bench.serving measures
them), compared between checkouts in alternation: one server after the other, round after round, so that the
machine's drift in speed falls on every checkout alike. A checkout is a folder with this repository (`git worktree
add`), optionally with the interpreter to run it as DIR:PYTHON (a virtual environment with other dependency
versions).
    git worktree add /tmp/before HEAD~1
    python -m bench.compare /tmp/before . [--rounds 8] [--seconds 5] [--model mnist-vqvae]
"""

import argparse
import os
import sys
from pathlib import Path

import httpx
import numpy as np

from bench.serving import EncodeLoad, encode_overhead, requests_for
from tools.local_server import free_port, start


def overhead_of(checkout: str, model: str, seconds: float) -> EncodeLoad:
    folder, _, python = checkout.partition(":")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LOG_LEVEL": "warning", "PYTHONPATH": str(Path(folder).resolve())}
    argv = [python or sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    server = start(argv, env, url, capture=False, cwd=Path(folder))
    try:
        grid = tuple(httpx.get(f"{url}/v1/models/{model}").raise_for_status().json()["manifest"]["latent_shape"][1:])
        return encode_overhead(url, server, model, requests_for(url, model, grid, False)["encode"], seconds)
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", help="DIR or DIR:PYTHON")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--model", default="mnist-vqvae")
    args = parser.parse_args()
    found: dict[str, list[EncodeLoad]] = {checkout: [] for checkout in args.checkouts}
    for round_number in range(1, args.rounds + 1):
        for checkout in args.checkouts:
            print(f"round {round_number}, {checkout}:", end=" ", flush=True)
            found[checkout].append(overhead_of(checkout, args.model, args.seconds))
    print("\nmedians (ranges) of the rounds")
    print("HTTP path: server CPU per encode request minus the model's, ms; rate: req/s; p99: ms")
    for checkout, loads in found.items():
        summary = [
            f"{name} {np.median(values):.{digits}f} ({np.min(values):.{digits}f} to {np.max(values):.{digits}f})"
            for name, values, digits in (
                ("HTTP path", [load.overhead * 1000 for load in loads], 3),
                ("rate", [load.rate for load in loads], 0),
                ("p99", [load.p99 * 1000 for load in loads], 1),
            )
        ]
        print(f"{checkout}: " + "; ".join(summary))


if __name__ == "__main__":
    main()
