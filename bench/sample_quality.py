"""Samples drawn through the service's `POST /sample` at the package's defaults (a request that names no guidance or
temperature), judged against real test images by the project's classifier: Inception Score, label accuracy, and
the Fréchet distance and KID in the classifier's penultimate features, as `latentgen-train evaluate` reports them.

Labelled requests ask for classes cycling through 0..9 (one per sample); unlabelled ones ask for none. Sample i
comes from seed + i, in requests of 100.

    python -m bench.sample_quality --model mnist-vqvae --data data/mnist.npz \
        --classifier training/weights/mnist-classifier.pt [--samples 5000] [--seed 100000]
"""

import argparse
import json

import numpy as np
import torch

from client import Client
from tools.local_server import ROOT, serving
from training.checkpoint import load_model
from training.data import load_dataset
from training.metrics.samples import make_judge

REQUEST = 100  # samples per request


def drawn(client: Client, model: str, *, n: int, seed: int, classes: int | None) -> tuple[np.ndarray, dict]:
    """n samples through /sample ((n, C, H, W) pixels) and the settings the first answer says were used."""
    images, used = [], {}
    for start in range(0, n, REQUEST):
        count = min(REQUEST, n - start)
        labels = [(start + i) % classes for i in range(count)] if classes else None
        answer = client.http.post(
            f"/v1/models/{model}/sample",
            params={"format": "array"},
            json={"n": count, "seed": seed + start, "labels": labels},
        )
        answer.raise_for_status()
        body = answer.json()
        images.append(np.asarray(body["arrays"], np.float32))
        used = used or {key: body.get(key) for key in ("version", "guidance", "temperature")}
    return np.concatenate(images), used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-vqvae")
    parser.add_argument("--data", default="data/mnist.npz")
    parser.add_argument("--classifier", default="training/weights/mnist-classifier.pt")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=100_000)
    args = parser.parse_args()
    classifier = load_model(args.classifier, "classifier")
    splits = load_dataset(args.data)
    judge = make_judge(classifier, name=args.classifier, train=splits.train.images, real=splits.test.images)
    report = {}
    with serving(MODELS_DIR=ROOT / "exported_models") as (url, _), Client(url) as client:
        for name, classes in (("labelled", classifier.config.num_classes), ("unlabelled", None)):
            images, used = drawn(client, args.model, n=args.samples, seed=args.seed, classes=classes)
            labels = np.arange(args.samples) % classes if classes else None
            report[name] = used | judge.score(torch.from_numpy(images), labels)
            print(name, json.dumps(report[name]), flush=True)
    print(json.dumps({"model": args.model, "samples": args.samples, "seed": args.seed, **report}, indent=2))


if __name__ == "__main__":
    main()
