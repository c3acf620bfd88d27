"""Images in and out of the client: PIL images, numpy pixels, files, base64 PNG; grids and GIFs.

Pixels follow the service's convention: float32 in [0, 1], shaped (N, C, H, W) (or (N, H, W) for
greyscale). uint8 arrays are taken as 0..255.
"""

import base64
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ImageLike = Image.Image | np.ndarray | str | os.PathLike | bytes
SUFFIXES = {".png", ".jpg", ".jpeg"}  # what the service decodes


def to_pil(pixels: np.ndarray) -> Image.Image:
    """One image, (H, W), (C, H, W) or (H, W, C) for C in {1, 3}, floats in [0, 1] or uint8 -> PIL."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[0] in (1, 3) and pixels.shape[-1] not in (1, 3):
        pixels = np.moveaxis(pixels, 0, -1)  # (C, H, W) -> (H, W, C)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.nan_to_num(pixels.astype(np.float32)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_file(image: ImageLike) -> bytes:
    """The PNG or JPEG bytes of one image: a file's own bytes, or a PIL image or pixels encoded as PNG."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, str | os.PathLike):
        return Path(image).read_bytes()
    if isinstance(image, np.ndarray):
        image = to_pil(image)
    return png_bytes(image)


def b64(image: ImageLike) -> str:
    return base64.b64encode(image_file(image)).decode()


def images_payload(images: ImageLike | Sequence[ImageLike]) -> dict[str, Any]:
    """The JSON body that carries images: float pixel arrays as `arrays` (exact), anything else as base64 files."""
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = images[None]
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8:
            return {"images": [b64(image) for image in images]}  # PNG is lossless for 8-bit pixels
        return {"arrays": np.asarray(images, dtype=np.float32).tolist()}
    if not isinstance(images, list | tuple):
        images = [images]
    return {"images": [b64(image) for image in images]}


def open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def from_b64(text: str) -> Image.Image:
    return open_png(base64.b64decode(text))


def pixels(images: Sequence[Image.Image]) -> np.ndarray | list[np.ndarray]:
    """PIL images -> float32 (N, C, H, W) in [0, 1]; a list of (C, H, W) where their sizes differ."""
    arrays = [np.asarray(image, dtype=np.float32) / 255.0 for image in images]
    arrays = [a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in arrays]
    return np.stack(arrays) if len({a.shape for a in arrays}) <= 1 else arrays


def tile(images: Sequence[Image.Image], columns: int | None = None, padding: int = 2) -> Image.Image:
    """One picture of the images in rows of `columns` (square-ish by default), grey gaps as the service draws them."""
    n = len(images)
    columns = max(1, min(columns or int(np.ceil(np.sqrt(n))), n))
    rows = -(-n // columns)
    w, h = max(image.width for image in images), max(image.height for image in images)  # cells fit the largest
    canvas = Image.new(images[0].mode, (columns * (w + padding) + padding, rows * (h + padding) + padding), "#808080")
    for i, image in enumerate(images):
        canvas.paste(image, (padding + (i % columns) * (w + padding), padding + (i // columns) * (h + padding)))
    return canvas


def stack_rows(pictures: Sequence[Image.Image]) -> Image.Image:
    """Pictures of the same width one above the other."""
    width, height = max(p.width for p in pictures), sum(p.height for p in pictures)
    canvas = Image.new(pictures[0].mode, (width, height), "#808080")
    top = 0
    for picture in pictures:
        canvas.paste(picture, (0, top))
        top += picture.height
    return canvas


def scaled(image: Image.Image, scale: int) -> Image.Image:
    """Nearest-neighbour upscaling: 28x28 digits stay sharp on a screen."""
    return image if scale == 1 else image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def load(path: str | os.PathLike, shape: Sequence[int]) -> Image.Image:
    """An image file as the model takes it: (C, H, W) -> greyscale or RGB, resized to W x H when it differs."""
    channels, height, width = shape
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
    return image if image.size == (width, height) else image.resize((width, height), Image.BILINEAR)


def checked_file(path: str | os.PathLike) -> Path:
    """A file whose header opens as an image, sent as it is (OSError otherwise); no pixel is decoded."""
    with Image.open(path):
        return Path(path)


def pixel_count(path: str | os.PathLike) -> int:
    """Width x height from the file's header; 0 for a file that is not an image (skipped later)."""
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except OSError:
        return 0


def save_gif(frames: Sequence[Image.Image], path: str | os.PathLike, scale: int = 4, ms: int = 120) -> None:
    """An animation that goes there and back (a ping-pong loop), upscaled."""
    frames = [scaled(frame.convert("L"), scale) for frame in frames]
    loop = frames + frames[-2:0:-1]
    loop[0].save(path, format="GIF", save_all=True, append_images=loop[1:], duration=ms, loop=0)


def image_files(folder: str | os.PathLike) -> list[Path]:
    """PNG and JPEG files under the folder (recursively), in a stable order."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
