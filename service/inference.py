"""What the service does with a model, in numpy and onnxruntime only.

Routes validate requests and call these functions; tests call them without HTTP. Inputs that
are wrong for the model (shape, range, NaN, codes outside the codebook) raise InvalidInputError.
"""

import numpy as np

from service.errors import InvalidInputError
from service.registry import LoadedModel
from service.sampling import CachedPrior, sample_codes, sample_codes_cached


def check_images(model: LoadedModel, images: np.ndarray) -> np.ndarray:
    """(N, C, H, W), or (N, H, W) for single-channel models, float pixels in [0, 1]."""
    shape = tuple(model.manifest.image_shape)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3 and shape[0] == 1:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1:] != shape:
        raise InvalidInputError(f"images must have shape (N, {', '.join(map(str, shape))}); got {images.shape}")
    if len(images) == 0:
        raise InvalidInputError("no images given")
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise InvalidInputError("pixel values must be finite and within [0, 1]")
    return images


def check_codes(model: LoadedModel, codes: np.ndarray) -> np.ndarray:
    """(N, h, w) integers in [0, K)."""
    grid = tuple(model.manifest.latent_shape[1:])
    codes = np.asarray(codes)
    if codes.ndim != 3 or codes.shape[1:] != grid or len(codes) == 0:
        raise InvalidInputError(f"codes must have shape (N, {grid[0]}, {grid[1]}); got {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise InvalidInputError("codes must be integers")
    if codes.min() < 0 or codes.max() >= model.manifest.num_codes:
        raise InvalidInputError(f"codes must lie in [0, {model.manifest.num_codes})")
    return codes.astype(np.int64)


def check_latents(model: LoadedModel, latents: np.ndarray) -> np.ndarray:
    shape = tuple(model.manifest.latent_shape)
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 1 + len(shape) or latents.shape[1:] != shape or len(latents) == 0:
        raise InvalidInputError(f"latents must have shape (N, {', '.join(map(str, shape))}); got {latents.shape}")
    if not np.isfinite(latents).all():
        raise InvalidInputError("latents must be finite (no NaN or Inf)")
    return latents


def check_labels(model: LoadedModel, labels: list[int] | None, n: int) -> np.ndarray | None:
    """Class labels for a class-conditional prior: required there, refused elsewhere."""
    prior = model.manifest.prior
    if prior is None or not prior.conditional:
        if labels is not None:
            raise InvalidInputError(f"model {model.id} is not class-conditional; omit labels")
        return None
    if labels is None:
        raise InvalidInputError(
            f"model {model.id} is class-conditional; give labels (one per sample, 0..{prior.num_classes - 1})"
        )
    if len(labels) == 1:
        labels = labels * n
    if len(labels) != n:
        raise InvalidInputError(f"give one label, or one per sample ({n}); got {len(labels)}")
    if min(labels) < 0 or max(labels) >= prior.num_classes:
        raise InvalidInputError(f"labels must lie in [0, {prior.num_classes})")
    return np.asarray(labels, dtype=np.int64)


def encode(model: LoadedModel, images: np.ndarray) -> dict[str, np.ndarray]:
    """Images -> code grids (N, h, w) and the encoder's continuous output z_e (N, D, h, w)."""
    z_e, codes = model.run("encoder", {"image": check_images(model, images)})
    return {"codes": codes, "z_e": z_e}


def decode(model: LoadedModel, z_q: np.ndarray) -> np.ndarray:
    """Continuous latents (N, D, h, w) -> images (N, C, H, W) in [0, 1]."""
    return model.run("decoder", {"z_q": check_latents(model, z_q)})[0]


def lookup(model: LoadedModel, codes: np.ndarray) -> np.ndarray:
    """Codes (N, h, w) -> z_q (N, D, h, w) = codebook[codes]."""
    return model.codebook[codes].transpose(0, 3, 1, 2)


def decode_codes(model: LoadedModel, codes: np.ndarray) -> np.ndarray:
    return decode(model, lookup(model, check_codes(model, codes)))


def nearest_codes(model: LoadedModel, z: np.ndarray) -> np.ndarray:
    """Continuous latents (N, D, h, w) -> nearest codebook entries (N, h, w)."""
    n, d, h, w = z.shape
    flat = z.transpose(0, 2, 3, 1).reshape(-1, d)
    distances = (model.codebook**2).sum(1) - 2 * flat @ model.codebook.T
    return distances.argmin(1).reshape(n, h, w)


def reconstruct(model: LoadedModel, images: np.ndarray) -> dict[str, np.ndarray]:
    codes = encode(model, images)["codes"]
    return {"images": decode_codes(model, codes), "codes": codes}


def sample(
    model: LoadedModel,
    n: int,
    seed: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    labels: list[int] | None = None,
    codes: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Ancestral samples from the prior; with `codes` and `mask`, only masked positions are drawn."""
    if "prior" not in model.sessions:
        raise InvalidInputError(f"model {model.id} has no prior to sample from")
    if temperature <= 0 or not np.isfinite(temperature):
        raise InvalidInputError("temperature must be a positive number")
    grid = tuple(model.manifest.latent_shape[1:])
    label_array = check_labels(model, labels, n)
    start, where = completion_grid(model, n, grid, codes, mask)

    if cached := cached_prior(model):
        sampled = sample_codes_cached(cached, start, where, seed, temperature, top_k, label_array)
    else:
        sampled = sample_codes(
            graph_call(model, "prior", "codes", "labels"), start, where, seed, temperature, top_k, label_array
        )
    return {"images": decode_codes(model, sampled), "codes": sampled}


def graph_call(model: LoadedModel, graph: str, *names: str):
    """A function of the graph's inputs in the given order (a trailing None label is left out)."""

    def call(*arrays: np.ndarray | None):
        feeds = {name: array for name, array in zip(names, arrays, strict=True) if array is not None}
        outputs = model.run(graph, feeds)
        return outputs[0] if len(outputs) == 1 else outputs

    return call


def cached_prior(model: LoadedModel) -> CachedPrior | None:
    """The Fast PixelCNN steps when the package carries them (see training/models/pixelcnn_steps.py)."""
    graphs = model.manifest.graphs
    if "prior_row" not in graphs or "prior_position" not in graphs:
        return None
    v_above = next(t for t in graphs["prior_row"].inputs if t.name == "v_above").shape  # (L-1, N, C, half, W)
    return CachedPrior(
        row=graph_call(model, "prior_row", "codes_above", "v_above", "labels"),
        position=graph_call(model, "prior_position", "codes_left", "h_left", "v_here", "labels"),
        num_codes=model.manifest.num_codes,
        layers=v_above[0] + 1,
        channels=v_above[2],
        half=v_above[3],
    )


def completion_grid(
    model: LoadedModel, n: int, grid: tuple[int, int], codes: np.ndarray | None, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Starting codes and the positions to sample, (n, h, w) each; everything when no codes are given."""
    if codes is None and mask is None:
        return np.zeros((n, *grid), np.int64), np.ones((n, *grid), bool)
    if codes is None or mask is None:
        raise InvalidInputError("completion needs both codes and mask")
    codes, mask = np.asarray(codes), np.asarray(mask)
    if codes.ndim == 2:
        codes = np.broadcast_to(codes, (n, *codes.shape))
    if mask.ndim == 2:
        mask = np.broadcast_to(mask, (n, *mask.shape))
    if mask.shape != (n, *grid) or mask.dtype != bool:
        raise InvalidInputError(f"mask must be booleans of shape ({grid[0]}, {grid[1]}) or (n, {grid[0]}, {grid[1]})")
    if len(codes) != n:
        raise InvalidInputError(f"give one code grid, or one per sample ({n}); got {len(codes)}")
    return check_codes(model, codes), mask


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (1 - t) * a + t * b


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of the flattened vectors (Shoemake 1985; White 2016 for latents)."""
    cos = np.dot(a.ravel(), b.ravel()) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-4:  # (anti)parallel: the great circle is undefined or the arc negligible
        return lerp(a, b, t)
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolate(
    model: LoadedModel, start: np.ndarray, end: np.ndarray, steps: int, method: str, quantize: bool
) -> dict[str, np.ndarray]:
    """`steps` points from start to end latent (each (D, h, w)), decoded; optionally snapped to codes."""
    blend = {"linear": lerp, "slerp": slerp}[method]
    latents = np.stack([blend(start, end, t) for t in np.linspace(0.0, 1.0, steps)]).astype(np.float32)
    if quantize:
        codes = nearest_codes(model, latents)
        return {"images": decode_codes(model, codes), "latents": latents, "codes": codes}
    return {"images": decode(model, latents), "latents": latents}


def endpoint_latent(
    model: LoadedModel, image: np.ndarray | None, codes: np.ndarray | None, latent: np.ndarray | None
) -> np.ndarray:
    """One interpolation endpoint, given as exactly one of an image, a code grid or a latent."""
    given = [x is not None for x in (image, codes, latent)]
    if sum(given) != 1:
        raise InvalidInputError("each endpoint takes exactly one of image, codes or latent")
    if image is not None:
        return encode(model, image[None])["z_e"][0]
    if codes is not None:
        return lookup(model, check_codes(model, np.asarray(codes)[None]))[0]
    return check_latents(model, np.asarray(latent)[None])[0]
