"""Paths through a model's latent space, decoded: interpolation between two endpoints (linear or spherical; a
VQ-VAE re-quantizes each step) and the traversal of one latent dimension (Higgins et al. 2017)."""

import numpy as np

from contract.errors import InvalidInputError
from service.inference import (
    check_codes,
    check_latents,
    decode,
    decode_codes,
    encode,
    lookup,
    nearest_codes,
    require_kind,
)
from service.package import LoadedModel


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (1 - t) * a + t * b


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of the flattened vectors (Shoemake 1985; White 2016 for latents), in float64 on
    the unit vectors, so that no magnitude overflows on the way."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a), np.linalg.norm(b)
    if min(norms) < 1e-12:
        return lerp(a, b, t)
    omega = np.arccos(np.clip(np.dot(a.ravel() / norms[0], b.ravel() / norms[1]), -1.0, 1.0))
    if np.sin(omega) < 1e-4:  # (anti)parallel: the great circle is undefined or the arc negligible
        return lerp(a, b, t)
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolate(
    model: LoadedModel,
    start: np.ndarray,
    end: np.ndarray,
    steps: int,
    method: str,
    quantize: bool | None = None,
    labels: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """`steps` points from the start to the end latent, decoded. A VQ-VAE snaps each point to its
    nearest codes unless quantize is false; a VAE has nothing to snap to."""
    blend = {"linear": lerp, "slerp": slerp}[method]
    if start.shape != end.shape:  # a size-free model's endpoints: two images (or grids) of one size
        raise InvalidInputError(f"the endpoints must have one shape; got {list(start.shape)} and {list(end.shape)}")
    latents = np.stack([blend(start, end, t) for t in np.linspace(0.0, 1.0, steps)]).astype(np.float32)
    if model.manifest.kind == "vae":
        if quantize:
            raise InvalidInputError("quantize applies to VQ-VAE models; a VAE's latent is continuous")
        return {"images": decode(model, latents, labels), "latents": latents}
    if quantize is None or quantize:
        codes = nearest_codes(model, latents)
        return {"images": decode_codes(model, codes, labels), "latents": latents, "codes": codes}
    return {"images": decode(model, latents, labels), "latents": latents}


def endpoint_latent(
    model: LoadedModel, image: np.ndarray | None, codes: np.ndarray | None, latent: np.ndarray | None
) -> np.ndarray:
    """One endpoint, given as exactly one of an image (-> z_e, or the VAE's posterior mean), a code grid or a latent."""
    given = [x is not None for x in (image, codes, latent)]
    if sum(given) != 1:
        raise InvalidInputError("each endpoint takes exactly one of image, codes or latent")
    if image is not None:
        encoded = encode(model, image[None])
        return encoded["mean" if model.manifest.kind == "vae" else "z_e"][0]
    if codes is not None:
        require_kind(model, "vqvae", "a codes endpoint")
        return lookup(model, check_codes(model, np.asarray(codes)[None]))[0]
    return check_latents(model, np.asarray(latent)[None])[0]


def traverse(
    model: LoadedModel,
    latent: np.ndarray,
    dimension: int,
    low: float,
    high: float,
    steps: int,
    labels: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """Decode `latent` with one dimension swept from low to high, the others held: how beta-VAE
    disentanglement is shown (Higgins et al. 2017)."""
    require_kind(model, "vae", "traverse")
    size = model.manifest.latent_shape[0]
    if not 0 <= dimension < size:
        raise InvalidInputError(f"dimension must lie in [0, {size})")
    latents = np.repeat(check_latents(model, latent[None]), steps, axis=0)
    latents[:, dimension] = np.linspace(low, high, steps)
    return {"images": decode(model, latents, labels), "latents": latents}
