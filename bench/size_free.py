"""Time per megapixel of a size-free VQ-VAE's encode and decode, from 256x256 to 4096x4096, tiled (TILE_SIZE) and
in one whole pass, in process on the package's own graphs (the service's code path without HTTP). At each size the
two runs alternate, so that their ratio sees the same minute of the machine; codes are checked equal.

    python -m bench.size_free [--model cifar10-vqvae] [--tile 512] [--sizes 256 512 1024 2048 4096]
"""

import argparse
import statistics
from pathlib import Path

import numpy as np

from bench.timing import alternating_seconds
from service import inference
from service.config import Settings
from service.package import LoadedModel, open_package

BUNDLED = Path(__file__).resolve().parents[1] / "exported_models"


def newest(model: str) -> Path:
    return max((BUNDLED / model).iterdir(), key=lambda folder: int(folder.name))


def opened(folder: Path, tile: int) -> LoadedModel:
    settings = Settings(MODELS_DIR=BUNDLED, TILE_SIZE=tile, MAX_BATCH_SIZE=1)
    return open_package(folder, settings, ["CPUExecutionProvider"])


def photo(side: int, channels: int) -> np.ndarray:
    """A smooth random picture (1, C, side, side): low-frequency noise enlarged, as photos are smooth."""
    coarse = np.random.default_rng(side).random((channels, side // 16, side // 16), dtype=np.float32)
    return np.repeat(np.repeat(coarse, 16, 1), 16, 2)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar10-vqvae")
    parser.add_argument("--tile", type=int, default=512, help="TILE_SIZE of the tiled runs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=3, help="per size up to 1024; one above")
    args = parser.parse_args()
    folder = newest(args.model)
    tiled, whole = opened(folder, args.tile), opened(folder, 1 << 20)
    channels = tiled.manifest.image_shape[0]
    print(f"{args.model} v{tiled.version}, TILE_SIZE={args.tile} against one whole pass; ms per megapixel (median)")
    print("| size | encode tiled | encode whole | tiled / whole | decode tiled | decode whole | tiled / whole |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for side in args.sizes:
        image = photo(side, channels)
        codes = inference.encode(whole, image)["codes"]
        if not np.array_equal(inference.encode(tiled, image)["codes"], codes):
            raise RuntimeError(f"tiled codes differ from whole codes at {side}x{side}")
        works = {
            "encode tiled": lambda image=image: inference.encode(tiled, image),
            "encode whole": lambda image=image: inference.encode(whole, image),
            "decode tiled": lambda codes=codes: inference.decode_codes(tiled, codes),
            "decode whole": lambda codes=codes: inference.decode_codes(whole, codes),
        }
        times = alternating_seconds(works, args.repeats if side <= 1024 else 1)
        megapixels = side * side / 1e6
        ms = {name: 1e3 * statistics.median(seconds) / megapixels for name, seconds in times.items()}
        ratio = {
            kind: statistics.median(t / w for t, w in zip(times[f"{kind} tiled"], times[f"{kind} whole"], strict=True))
            for kind in ("encode", "decode")
        }
        print(
            f"| {side}x{side} | {ms['encode tiled']:.0f} | {ms['encode whole']:.0f} | {ratio['encode']:.2f} | "
            f"{ms['decode tiled']:.0f} | {ms['decode whole']:.0f} | {ratio['decode']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
