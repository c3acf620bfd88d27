"""How fast is ancestral sampling? Prints one full prior forward pass at batch N, the naive sampler
(h*w full passes), the cached Fast PixelCNN sampler, and POST /sample end to end, all on onnxruntime; for a prior
whose labels are optional, POST /sample also with the package's classifier-free guidance (two passes by design).

    python -m bench.sampling [--model mnist-vqvae] [--n 64] [--repeats 5]
"""

import argparse

import numpy as np
from fastapi.testclient import TestClient

from bench.timing import median_seconds
from contract.sampling import sample_codes, sample_codes_cached
from service import prior
from service.config import Settings
from service.main import create_app
from service.registry import Registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-vqvae")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    settings = Settings(MAX_BATCH_SIZE=1)  # measure the graphs themselves, without the batcher's threads
    registry = Registry(settings)
    registry.load()
    model = registry.get(args.model)
    h, w = model.manifest.latent_shape[1:]
    labels = np.zeros(args.n, np.int64) if model.manifest.prior.conditional else None
    start, mask = np.zeros((args.n, h, w), np.int64), np.ones((args.n, h, w), bool)
    full = prior.graph_call(model, "prior", "codes", "labels")
    cached = prior.onnx_steps(model)

    forward = median_seconds(lambda: full(start, labels), args.repeats)
    naive = median_seconds(lambda: sample_codes(full, start, mask, 0, labels=labels), max(1, args.repeats // 2))
    fast = median_seconds(lambda: sample_codes_cached(cached, start, mask, 0, labels=labels), args.repeats)
    body = {"n": args.n, "seed": 0} | ({"labels": [0]} if labels is not None else {})
    guided = model.manifest.prior.labels_optional and model.manifest.prior.guidance > 0
    with TestClient(create_app(Settings())) as client:

        def sample(extra: dict) -> float:
            route = f"/v1/models/{args.model}/sample"
            return median_seconds(lambda: client.post(route, json=body | extra).raise_for_status(), args.repeats)

        http = sample({"guidance": 0} if guided else {})
        http_guided = sample({}) if guided else None

    print(f"model {args.model} v{model.version} on {model.provider}; n = {args.n}; grid {h}x{w}")
    print(f"medians of {args.repeats} runs")
    print(f"{'one full prior forward pass':<40}{forward * 1000:>10.1f} ms")
    print(f"{'naive sampler (h*w full passes)':<40}{naive * 1000:>10.1f} ms  {naive / forward:>6.1f}x forward")
    print(f"{'cached sampler (Fast PixelCNN)':<40}{fast * 1000:>10.1f} ms  {fast / forward:>6.1f}x forward")
    print(f"{'POST /sample (codes + decode + PNGs)':<40}{http * 1000:>10.1f} ms  {http / forward:>6.1f}x forward")
    if http_guided is not None:
        name = f"POST /sample, guidance {model.manifest.prior.guidance:g}"
        print(f"{name:<40}{http_guided * 1000:>10.1f} ms  {http_guided / forward:>6.1f}x forward")


if __name__ == "__main__":
    main()
