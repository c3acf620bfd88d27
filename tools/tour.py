"""The README's pictures, drawn through the client: prior samples, interpolations, the 2-D VAE's manifold.

`python -m tools.tour --url URL --out docs/tour` writes samples.png, interpolation.png and
manifold.png there (each picture is skipped, saying why, when its model is not served).
"""

import argparse
import os
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
from PIL import Image

from client import images as pictures
from client.api import DEFAULT_URL, Client

SEED = 0


def prior_labels(info: dict, n: int) -> list[int] | None:
    """A class-conditional prior draws column j as class j; an unconditional one needs none."""
    prior = info["manifest"].get("prior") or {}
    classes = prior.get("num_classes") or 0
    return [i % classes for i in range(n)] if prior.get("conditional") and classes else None


def samples(client: Client, info: dict, rows: int = 8) -> Image.Image:
    """rows x 10 samples (one class per column when the prior is class-conditional)."""
    n = rows * 10
    result = client.sample(info["model"], n=n, seed=SEED, labels=prior_labels(info, n))
    return result.grid(columns=10)


def interpolation(client: Client, info: dict, rows: int = 6, steps: int = 10) -> Image.Image:
    """Each row: the path between two prior samples, through the continuous latent, re-quantized at every step."""
    ends = client.sample(info["model"], n=2 * rows, seed=SEED + 1, labels=prior_labels(info, 2 * rows)).codes
    strips = [
        client.interpolate(info["model"], {"codes": ends[2 * i]}, {"codes": ends[2 * i + 1]}, steps=steps).grid(steps)
        for i in range(rows)
    ]
    return pictures.stack_rows(strips)


def manifold(client: Client, info: dict, size: int = 20) -> Image.Image:
    """The decoded grid of Gaussian quantiles over a 2-D latent (Kingma & Welling 2014, figure 4)."""
    quantiles = [NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, size)]
    latents = np.array([[x, y] for y in reversed(quantiles) for x in quantiles], np.float32)
    images = []
    for start in range(0, len(latents), 200):  # under the service's MAX_IMAGES per request
        images += client.decode(info["model"], latents=latents[start : start + 200]).images
    return pictures.tile(images, size, padding=0)


def draw_tour(client: Client, out: Path, vqvae: str, vae: str, scale: int = 2) -> list[Path]:
    served = {m["model"]: m for m in client.models()}
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(name: str, picture: Image.Image) -> None:
        pictures.scaled(picture, scale).save(out / name)
        written.append(out / name)

    if vqvae in served:
        save("samples.png", samples(client, served[vqvae]))
        save("interpolation.png", interpolation(client, served[vqvae]))
    else:
        print(f"skipped samples.png and interpolation.png: {vqvae} is not served", file=sys.stderr)
    info = served.get(vae)
    if info and info["manifest"]["latent_shape"] == [2] and not info["manifest"].get("decoder_labels"):
        save("manifold.png", manifold(client, info))
    else:
        print(f"skipped manifold.png: {vae} is not served as an unconditional VAE with a 2-D latent", file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser("python -m tools.tour", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LATENTGEN_URL", DEFAULT_URL))
    parser.add_argument("--vqvae", default="mnist-vqvae")
    parser.add_argument("--vae", default="mnist-vae-2d", help="a VAE with a 2-D latent, for the manifold")
    parser.add_argument("--scale", type=int, default=2, help="upscale by this factor")
    parser.add_argument("--out", default="docs/tour")
    args = parser.parse_args(argv)
    with Client(args.url) as client:
        for path in draw_tour(client, Path(args.out), args.vqvae, args.vae, scale=args.scale):
            print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
