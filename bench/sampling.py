"""How fast is ancestral sampling? Prints one full prior forward pass at batch N, the naive sampler
(h*w full passes), the cached Fast PixelCNN sampler, and POST /sample end to end, all on onnxruntime; for a prior
whose labels are optional, POST /sample also with the package's classifier-free guidance (two passes by design),
measured against a pass at twice the batch as well. The passes and the samplers are timed in alternation, round
after round, so that each ratio compares the same minutes of the machine's drifting speed.

    python -m bench.sampling [--model mnist-vqvae] [--version V] [--n 64] [--repeats 5]
"""

import argparse
import statistics

import numpy as np
from fastapi.testclient import TestClient

from bench.timing import alternating_seconds, median_seconds
from contract.sampling import sample_codes, sample_codes_cached
from service import prior
from service.config import Settings
from service.main import create_app
from service.registry import Registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-vqvae")
    parser.add_argument("--version", type=int, help="the package version (default: the newest)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    settings = Settings(MAX_BATCH_SIZE=1)  # measure the graphs themselves, without the batcher's threads
    registry = Registry(settings)
    registry.load()
    model = registry.get(args.model, args.version)
    h, w = model.manifest.latent_shape[1:]
    labels = np.zeros(args.n, np.int64) if model.manifest.prior.conditional else None
    start, mask = np.zeros((args.n, h, w), np.int64), np.ones((args.n, h, w), bool)
    full = prior.graph_call(model, "prior", "codes", "labels")
    cached = prior.onnx_steps(model)

    body = {"n": args.n, "seed": 0} | ({"labels": [0]} if labels is not None else {})
    guided = model.manifest.prior.labels_optional and model.manifest.prior.guidance > 0
    route = f"/v1/models/{args.model}/sample?version={model.version}"
    with TestClient(create_app(Settings())) as client:
        works = {
            "forward": lambda: full(start, labels),
            "cached": lambda: sample_codes_cached(cached, start, mask, 0, labels=labels),
            "http": lambda: client.post(route, json=body | ({"guidance": 0} if guided else {})).raise_for_status(),
        }
        if guided:  # a guided row runs beside an unlabelled twin: the pass it is measured against is twice as large
            twins = np.full_like(labels, model.manifest.no_label)
            works["forward 2n"] = lambda: full(np.concatenate([start, start]), np.concatenate([labels, twins]))
            works["http guided"] = lambda: client.post(route, json=body).raise_for_status()
        times = alternating_seconds(works, args.repeats)
    naive = median_seconds(lambda: sample_codes(full, start, mask, 0, labels=labels), max(1, args.repeats // 2))

    def line(name: str, seconds: list[float], against: str | None = None) -> None:
        median = statistics.median(seconds)
        ratio = "" if against is None else f"  {statistics.median(np.divide(seconds, times[against])):>6.2f}x {against}"
        print(f"{name:<44}{median * 1000:>10.1f} ms{ratio}")

    print(f"model {args.model} v{model.version} on {model.provider}; n = {args.n}; grid {h}x{w}")
    print(f"medians of {args.repeats} rounds, each timing every row in turn; a ratio: the median of the rounds' ratios")
    line("one full prior forward pass at batch n", times["forward"])
    line("naive sampler (h*w full passes, timed apart)", [naive] * args.repeats, "forward")
    line("cached sampler (Fast PixelCNN)", times["cached"], "forward")
    line("POST /sample (codes + decode + PNGs)", times["http"], "forward")
    if guided:
        name = f"POST /sample, guidance {model.manifest.prior.guidance:g}"
        line("one full prior forward pass at batch 2n", times["forward 2n"])
        line(name, times["http guided"], "forward")
        line(name, times["http guided"], "forward 2n")


if __name__ == "__main__":
    main()
