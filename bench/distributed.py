"""Data-parallel training's cost: throughput with 1 and N processes on this machine, and a projection of the
all-reduce's cost per step on N GPUs from the gradients' size.

    python -m bench.distributed [--processes 2] [--rounds 2] [--images 2048]

The throughput rows run the same stage-1 command (`vqvae`, one epoch of synthetic images, the bundled model's
widths) under torchrun and alone, in alternation; images per second come from the run's own wall-clock record. On a
machine whose processes share the same cores they show the overhead, not a speed-up. The projection assumes a
ring all-reduce, which moves 2 (N - 1) / N times the gradients' bytes in and out of each GPU per step.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.models.vq_vae import VQVAE, VQVAEConfig

# Bytes per second each way per GPU, for the projection: stated figures, not measured here.
LINKS = {"NVLink 4 (H100 SXM)": 450e9, "PCIe 5 x16": 64e9, "400 Gb/s InfiniBand per GPU": 50e9}


def epoch_rate(processes: int, images: int, out: Path) -> float:
    command = ["vqvae", "--data", f"synthetic:{images}", "--epochs", "1", "--batch-size", "128", "--out", str(out)]
    if processes > 1:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
        launcher = [torchrun, "--standalone", "--nproc_per_node", str(processes)]
    else:
        launcher = [sys.executable]
    threads = max(1, (os.cpu_count() or 1) // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([*launcher, "-m", "training", *command], env=env, check=True, capture_output=True)
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    trained = images - 2 * max(1, images // 10)  # the synthetic set's 80/10/10 split
    return trained / record["seconds"]


def gradient_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=2048)
    args = parser.parse_args()
    rates: dict[int, list[float]] = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(args.rounds):
            for processes in rates:
                out = Path(folder) / f"{round_number}-{processes}"
                rates[processes].append(epoch_rate(processes, args.images, out))
    print(f"stage 1 (vqvae), one epoch of {args.images} synthetic images, {os.cpu_count()} CPUs, alternated:")
    for processes, found in rates.items():
        print(f"  {processes} process(es): " + ", ".join(f"{rate:.0f}" for rate in found) + " images/s")
    models = {
        "mnist-vqvae's VQ-VAE": VQVAE(VQVAEConfig()),
        "mnist-vqvae's prior (192 channels, 12 layers)": PixelCNN(
            PixelCNNConfig(channels=192, layers=12, kernel=3, head_hidden=512)
        ),
    }
    print("projected all-reduce per step (ring; gradients in float32):")
    for name, model in models.items():
        size = gradient_bytes(model)
        for gpus in (2, 8):
            moved = 2 * (gpus - 1) / gpus * size
            times = ", ".join(f"{link} {moved / rate * 1e3:.2f} ms" for link, rate in LINKS.items())
            print(f"  {name}, {size / 2**20:.1f} MiB of gradients, {gpus} GPUs: {times}")


if __name__ == "__main__":
    main()
