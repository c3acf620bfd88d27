"""What the client's methods return: numpy arrays for codes and latents, PIL images for pictures."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from client import images as pictures


def array(values: Any, dtype: Any = None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=dtype)


@dataclass
class Encoding:
    """What encode returns: VQ-VAE code grids (N, h, w) (+ z_e), or a VAE's posterior (N, Z) (+ a draw z)."""

    model: str
    version: int
    provider: str
    codes: np.ndarray | None = None
    z_e: np.ndarray | None = None
    mean: np.ndarray | None = None
    logvar: np.ndarray | None = None
    z: np.ndarray | None = None
    seed: int | None = None
    resize: dict | None = None  # with resize=: what the service did to the images


@dataclass
class Images:
    """Images and whatever came with them: codes (VQ-VAE), latents, the seed a sample used."""

    model: str
    version: int
    provider: str
    images: list[Image.Image]
    pixels: np.ndarray  # (N, C, H, W) float32 in [0, 1]: exact with exact=True, else read back from the PNGs
    codes: np.ndarray | None = None
    latents: np.ndarray | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def grid(self, columns: int | None = None) -> Image.Image:
        return pictures.tile(self.images, columns)
