"""Pixels <-> PNG with numpy and Pillow only, and pictures tiled into grids (the service's image codecs; the
training reports draw with the same)."""

import io

import numpy as np
from PIL import Image

from contract.errors import InvalidInputError


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1], (..., C, H, W) -> uint8 (..., H, W, C)."""
    pixels = np.clip(np.nan_to_num(images) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.moveaxis(pixels, -3, -1)


def tile(images: np.ndarray, columns: int, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one (C, rows*(H+p)+p, columns*(W+p)+p) picture, grey gaps."""
    n, c, h, w = images.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    canvas = np.full((c, rows * (h + padding) + padding, columns * (w + padding) + padding), 0.5, np.float32)
    for i, image in enumerate(images):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        canvas[:, top : top + h, left : left + w] = image
    return canvas


def png_bytes(image: np.ndarray) -> bytes:
    """One (C, H, W) image in [0, 1] -> PNG bytes (grey for C = 1, RGB for C = 3)."""
    pixels = to_uint8(image)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# Pillow modes of 8-bit images by the channels they carry once alpha is dropped.
MODE_CHANNELS = {"1": 1, "L": 1, "LA": 1, "RGB": 3, "RGBA": 3, "P": 3, "PA": 3, "CMYK": 3, "YCbCr": 3}


def decode_image(data: bytes, image_shape: tuple[int, int, int]) -> np.ndarray:
    """PNG/JPEG bytes -> (C, H, W) float32 in [0, 1], exactly the model's shape.

    The size is checked from the header before any pixel is decoded, so a decompression bomb
    costs nothing; Pillow's own pixel limit stays on as a second guard. Alpha is dropped.
    """
    channels, height, width = image_shape
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidInputError(f"not a PNG or JPEG image: {error}") from None
    if image.size != (width, height):
        raise InvalidInputError(f"the model takes {width}x{height} images; got {image.size[0]}x{image.size[1]}")
    got = MODE_CHANNELS.get(image.mode)
    if got is None:
        raise InvalidInputError(f"unsupported pixel format {image.mode}; send 8-bit greyscale or RGB")
    if got != channels:
        kinds = {1: "single-channel (greyscale)", 3: "RGB"}
        raise InvalidInputError(f"the model takes {kinds[channels]} images; got a {image.mode} image")
    mode = "L" if channels == 1 else "RGB"
    try:
        image.load()  # decodes the pixels
        if image.mode != mode:
            image = image.convert(mode)
    except (OSError, ValueError, SyntaxError) as error:
        raise InvalidInputError(f"truncated or corrupt image: {error}") from None
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
