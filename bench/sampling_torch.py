"""Ancestral sampling timed in torch, on CUDA when present: one full prior forward pass at batch N,
the naive sampler (h*w full passes) and the Fast PixelCNN sampler (the service's own sampling loop
driving the row and position steps). Needs neither FastAPI nor onnxruntime, so it runs where only
torch sees the GPU (the device tool's machines). Timing does not depend on the weights: without
--prior a freshly initialised prior of the bundled model's shape is timed.

    python -m bench.sampling_torch [--prior runs/prior/best.pt] [--device cuda] [--n 64] [--repeats 5]
"""

import argparse

import numpy as np
import torch

from bench.timing import median_seconds
from contract.sampling import sample_codes_cached
from training.checkpoint import load_model
from training.models.pixelcnn import PixelCNN, PixelCNNConfig
from training.models.pixelcnn_steps import torch_steps
from training.run import pick_device

BUNDLED_PRIOR = PixelCNNConfig(channels=192, layers=12, kernel=3, head_hidden=512)  # tests check it against the package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", help="a prior checkpoint; default: the bundled prior's shape, random weights")
    parser.add_argument("--device", default="auto", help="auto: CUDA when present, CPU otherwise")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = pick_device(args.device)
    prior = load_model(args.prior, "prior", device) if args.prior else PixelCNN(BUNDLED_PRIOR).to(device).eval()
    c = prior.config
    labels = torch.zeros(args.n, dtype=torch.long, device=device) if c.num_classes else None
    start = torch.zeros(args.n, *c.grid, dtype=torch.long, device=device)
    mask = np.ones((args.n, *c.grid), bool)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    cached = torch_steps(prior, device)
    numpy_labels = None if labels is None else labels.cpu().numpy()

    with torch.inference_mode():
        forward = median_seconds(lambda: prior.logits(start, labels), args.repeats, sync)
        naive = median_seconds(lambda: prior.sample(args.n, labels=labels), max(1, args.repeats // 2), sync)
    fast = median_seconds(
        lambda: sample_codes_cached(cached, start.cpu().numpy(), mask, 0, labels=numpy_labels), args.repeats, sync
    )

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {name}; prior {c.layers} layers x {c.channels} channels; n = {args.n}")
    print(f"medians of {args.repeats} runs")
    print(f"{'one full prior forward pass':<40}{forward * 1000:>10.1f} ms")
    print(f"{'naive sampler (h*w full passes)':<40}{naive * 1000:>10.1f} ms  {naive / forward:>6.1f}x forward")
    print(f"{'Fast PixelCNN cached sampler':<40}{fast * 1000:>10.1f} ms  {fast / forward:>6.1f}x forward")


if __name__ == "__main__":
    main()
