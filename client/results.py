"""What the client's methods return: numpy arrays for codes and latents, PIL images for pictures."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from client import images as pictures

Arrays = np.ndarray | list[np.ndarray]  # one array, or one per image where the images differ in size


def array(values: Any, dtype: Any = None) -> Arrays | None:
    """JSON lists -> one array (N, ...), or a list of N arrays where the items differ in shape (a size-free model's
    grids of photos of several sizes)."""
    if values is None:
        return None
    items = [np.asarray(item, dtype=dtype) for item in values]
    if len({item.shape for item in items}) > 1:
        return items
    return np.asarray(values, dtype=dtype)


@dataclass
class Encoding:
    """What encode returns: VQ-VAE code grids (N, h, w) (+ z_e), or a VAE's posterior (N, Z) (+ a draw z). Grids of
    images of several sizes (a size-free model) come as a list of (h, w) arrays."""

    model: str
    version: int
    provider: str
    codes: Arrays | None = None
    z_e: Arrays | None = None
    mean: np.ndarray | None = None
    logvar: np.ndarray | None = None
    z: np.ndarray | None = None
    seed: int | None = None
    resize: dict | None = None  # with resize=: what the service did to the images (native: padded to a stride)


@dataclass
class Images:
    """Images and whatever came with them: codes (VQ-VAE), latents, the seed a sample used."""

    model: str
    version: int
    provider: str
    images: list[Image.Image]
    pixels: Arrays  # (N, C, H, W) float32 in [0, 1] (exact with exact=True, else from the PNGs); a list by size
    codes: Arrays | None = None
    latents: Arrays | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def grid(self, columns: int | None = None) -> Image.Image:
        return pictures.tile(self.images, columns)
