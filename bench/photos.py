"""A size-free VQ-VAE on real photos at their own size, through the service: PSNR and SSIM of `?resize=native`
against `?resize=crop` (the centre square squeezed to the training size, reconstructed, and enlarged back to the
square it came from: what a one-size model can give).

The photos ship inside scikit-image's wheel (skimage/data; read from the installed files, never downloaded), with
the licences that scikit-image's data module states for them:

    pip install '.[photos]'
    python -m bench.photos [--model cifar10-vqvae] [--picture docs/tour/photo.jpg]

`--picture` draws one photo, its native-size reconstruction and the crop round trip side by side.
"""

import argparse
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from client import Client
from tools.local_server import serving

# file in skimage/data -> (what it shows, its licence as scikit-image states it)
PHOTOS = {
    "astronaut.png": ("portrait (Eileen Collins)", "public domain (NASA)"),
    "coffee.png": ("cup of coffee", "CC0 (Rachel Michetti)"),
    "chelsea.png": ("cat", "CC0 (Stefan van der Walt)"),
    "rocket.jpg": ("rocket launch", "public domain (SpaceX)"),
    "hubble_deep_field.jpg": ("Hubble deep field", "public domain (NASA)"),
    "retina.jpg": ("fundus photograph", "CC0 (Mikael Häggström)"),
}


def photo_folder() -> Path:
    """skimage/data of the installed scikit-image, found without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-image is not installed: pip install '.[photos]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def rgb(path: Path) -> np.ndarray:
    """(3, H, W) float32 in [0, 1]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.float32).transpose(2, 0, 1) / 255


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=0, data_range=1.0))


def centre_square(pixels: np.ndarray) -> np.ndarray:
    """The centred square that ?resize=crop takes (a square model's aspect ratio)."""
    _, height, width = pixels.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return pixels[:, top : top + side, left : left + side]


def enlarged(pixels: np.ndarray, side: int) -> np.ndarray:
    """(3, h, w) -> (3, side, side), bicubic."""
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0))
    return np.asarray(image.resize((side, side), Image.BICUBIC), np.float32).transpose(2, 0, 1) / 255


def measure(client: Client, model: str, path: Path) -> dict:
    original = rgb(path)
    native = client.reconstruct(model, path, resize="native", exact=True)
    rebuilt, grid = native.pixels[0], np.asarray(native.codes[0]).shape
    square = centre_square(original)
    thumbnail = client.reconstruct(model, path, resize="crop", exact=True).pixels[0]
    round_trip = enlarged(thumbnail, square.shape[1])
    return {
        "size": f"{original.shape[2]}x{original.shape[1]}",
        "grid": f"{grid[1]}x{grid[0]}",
        "native": (psnr(rebuilt, original), ssim(rebuilt, original)),
        "crop": (psnr(round_trip, square), ssim(round_trip, square)),
        "pictures": (original, rebuilt, round_trip),
    }


def side_by_side(original: np.ndarray, rebuilt: np.ndarray, round_trip: np.ndarray, gap: int = 8) -> Image.Image:
    """The photo, its native-size reconstruction, and the crop round trip (placed over the square it came from)."""
    _, height, width = original.shape
    crop = np.full_like(original, 0.5)
    side = round_trip.shape[1]
    top, left = (height - side) // 2, (width - side) // 2
    crop[:, top : top + side, left : left + side] = round_trip
    canvas = np.ones((3, height, 3 * width + 2 * gap), np.float32)
    for i, pixels in enumerate((original, rebuilt, crop)):
        canvas[:, :, i * (width + gap) : i * (width + gap) + width] = pixels
    return Image.fromarray((np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar10-vqvae")
    parser.add_argument("--picture", type=Path, help="where to draw coffee.png's comparison")
    args = parser.parse_args()
    folder = photo_folder()
    with serving(LOG_LEVEL="warning") as (url, _), Client(url, timeout=600) as client:
        found = {name: measure(client, args.model, folder / name) for name in PHOTOS}
    print(f"{args.model}, photos from scikit-image's wheel; PSNR dB / SSIM")
    print("| photo | licence | size | code grid | native size | crop to the training size and back |")
    print("|---|---|---|---|---:|---:|")
    for name, result in found.items():
        what, licence = PHOTOS[name]
        native, crop = result["native"], result["crop"]
        print(
            f"| {what} (`{name}`) | {licence} | {result['size']} | {result['grid']} | "
            f"{native[0]:.1f} / {native[1]:.3f} | {crop[0]:.1f} / {crop[1]:.3f} |"
        )
    if args.picture:
        args.picture.parent.mkdir(parents=True, exist_ok=True)
        side_by_side(*found["coffee.png"]["pictures"]).save(args.picture, quality=90)
        print(f"picture: {args.picture}")


if __name__ == "__main__":
    main()
