"""Pixels <-> PNG with numpy and Pillow only (shared by the service and the training reports)."""

import io

import numpy as np
from PIL import Image


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
