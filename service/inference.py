"""What the service does with a model, in numpy and onnxruntime only.

Routes validate requests and call these functions; tests call them without HTTP. Inputs that
are wrong for the model (shape, range, NaN, codes outside the codebook) raise InvalidInputError.
Both kinds share the operations where the papers do: a VQ-VAE's latent is z_e / z_q (D, h, w) and
its prior is the PixelCNN; a VAE's latent is z (Z,) and its prior N(0, I). `inpaint` is a VAE operation
(Rezende et al. 2014); sampling from the prior is sampling.py's, paths through latent space (interpolation,
traversal) are latent_paths.py's.
"""

import math
from collections.abc import Callable

import numpy as np

from contract.errors import InvalidInputError
from service.batching import Feeds
from service.package import LoadedModel

# |latent value| accepted anywhere (latents, endpoints, traversal ends): far beyond what any trained model's encoder
# gives, and far enough from float32's limit (3.4e38) that no interpolation or decoder layer overflows.
LATENT_BOUND = 1e6


def size_free_stride(model: LoadedModel) -> int | None:
    """Pixels per code of a size-free model (any multiple of it on each side); None for a model of one size."""
    return model.manifest.size_free.stride if model.manifest.size_free else None


def pixels_per_code(model: LoadedModel) -> int:
    """The pixels one code of a VQ-VAE's grid decodes to (stride^2): what a decode request's codes weigh."""
    return math.prod(model.manifest.image_shape[1:]) // math.prod(model.manifest.latent_shape[1:])


def check_images(model: LoadedModel, images: np.ndarray) -> np.ndarray:
    """(N, C, H, W), or (N, H, W) for single-channel models, float pixels in [0, 1]; the model's H and W, or for a
    size-free model any multiples of its stride."""
    shape, stride = tuple(model.manifest.image_shape), size_free_stride(model)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3 and shape[0] == 1:
        images = images[:, None]
    if stride is not None:
        if images.ndim != 4 or images.shape[1] != shape[0] or min(images.shape[2:]) < 1:
            raise InvalidInputError(f"images must have shape (N, {shape[0]}, H, W); got {images.shape}")
        if images.shape[2] % stride or images.shape[3] % stride:
            size = f"{images.shape[3]}x{images.shape[2]}"
            raise InvalidInputError(f"image sides must be multiples of {stride}; got {size}")
    elif images.ndim != 4 or images.shape[1:] != shape:
        raise InvalidInputError(f"images must have shape (N, {', '.join(map(str, shape))}); got {images.shape}")
    if len(images) == 0:
        raise InvalidInputError("no images given")
    if not (images.min() >= 0 and images.max() <= 1):  # false for NaN too, and infinities are out of range
        raise InvalidInputError("pixel values must be finite and within [0, 1]")
    return images


def check_codes(model: LoadedModel, codes: np.ndarray) -> np.ndarray:
    """(N, h, w) integers in [0, K): the model's grid, or for a size-free model any grid."""
    grid = tuple(model.manifest.latent_shape[1:])
    codes = np.asarray(codes)
    if model.manifest.size_free is not None:
        if codes.ndim != 3 or codes.size == 0:
            raise InvalidInputError(f"codes must be grids (N, h, w) with N, h, w >= 1; got shape {codes.shape}")
    elif codes.ndim != 3 or codes.shape[1:] != grid or len(codes) == 0:
        raise InvalidInputError(f"codes must have shape (N, {grid[0]}, {grid[1]}); got {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise InvalidInputError("codes must be integers")
    if codes.min() < 0 or codes.max() >= model.manifest.num_codes:
        raise InvalidInputError(f"codes must lie in [0, {model.manifest.num_codes})")
    return codes.astype(np.int64)


def check_latents(model: LoadedModel, latents: np.ndarray) -> np.ndarray:
    """(N, Z) for a VAE, (N, D, h, w) for a VQ-VAE (any h, w for a size-free one); finite, bounded values."""
    shape = tuple(model.manifest.latent_shape)
    latents = np.asarray(latents, dtype=np.float32)
    expected = shape[:1] if model.manifest.size_free is not None else shape  # (D,) then any h, w
    if latents.ndim != 1 + len(shape) or latents.shape[1 : 1 + len(expected)] != expected or latents.size == 0:
        raise InvalidInputError(f"latents must have shape (N, {', '.join(map(str, shape))}); got {latents.shape}")
    if not np.abs(latents).max() <= LATENT_BOUND:  # false for NaN too
        raise InvalidInputError(f"latent values must be finite and within [-{LATENT_BOUND:g}, {LATENT_BOUND:g}]")
    return latents


def label_classes(model: LoadedModel) -> int:
    """How many classes the model's generator is conditioned on (the VQ-VAE's prior, the VAE's decoder); 0 if none."""
    if model.manifest.kind == "vae":
        return model.manifest.decoder_labels
    prior = model.manifest.prior
    return prior.num_classes if prior is not None and prior.conditional else 0


def check_labels(model: LoadedModel, labels: list[int] | None, n: int) -> np.ndarray | None:
    """Class labels for a class-conditional model: required there (optional for a prior that learnt "no label"),
    refused elsewhere."""
    classes = label_classes(model)
    if not classes:
        if labels is not None:
            raise InvalidInputError(f"model {model.id} is not class-conditional; omit labels")
        return None
    if labels is None and model.manifest.no_label is not None:
        return np.full(n, model.manifest.no_label, np.int64)
    if labels is None:
        raise InvalidInputError(
            f"model {model.id} is class-conditional; give labels (one, or one per item, 0..{classes - 1})"
        )
    labels = [int(label) for label in labels]
    if len(labels) == 1:
        labels = labels * n
    if len(labels) != n:
        raise InvalidInputError(f"give one label, or one per item ({n}); got {len(labels)}")
    if min(labels) < 0 or max(labels) >= classes:
        raise InvalidInputError(f"labels must lie in [0, {classes})")
    return np.asarray(labels, dtype=np.int64)


def require_kind(model: LoadedModel, kind: str, operation: str) -> None:
    if model.manifest.kind != kind:
        raise InvalidInputError(f"{operation} works on {kind} models; {model.id} is a {model.manifest.kind}")


ENCODER_OUTPUTS = {"vae": ("mean", "logvar"), "vqvae": ("z_e", "codes")}


def named_encoding(model: LoadedModel, outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip(ENCODER_OUTPUTS[model.manifest.kind], outputs, strict=True))


def encode(model: LoadedModel, images: np.ndarray) -> dict[str, np.ndarray]:
    """Images -> VQ-VAE: code grids (N, h, w) and z_e (N, D, h, w); VAE: posterior mean and logvar (N, Z)."""
    return named_encoding(model, model.run("encoder", {"image": check_images(model, images)}))


async def encode_async(model: LoadedModel, images: np.ndarray) -> dict[str, np.ndarray]:
    """`encode` for the event loop (the hot path of the service: no worker-thread hop)."""
    return named_encoding(model, await model.run_async("encoder", {"image": check_images(model, images)}))


def posterior_sample(mean: np.ndarray, logvar: np.ndarray, seed: int) -> np.ndarray:
    """z = mean + exp(logvar / 2) * noise, image i drawing its noise from seed + i."""
    noise = np.stack([np.random.default_rng(seed + i).standard_normal(mean.shape[1]) for i in range(len(mean))])
    return (mean + np.exp(0.5 * logvar) * noise).astype(np.float32)


def decoder_feeds(model: LoadedModel, latents: np.ndarray, labels: list[int] | None = None) -> Feeds:
    """The decoder's inputs: z_q (N, D, h, w) for a VQ-VAE, z (N, Z) (+ labels) for a VAE."""
    latents = check_latents(model, latents)
    if model.manifest.kind == "vqvae":
        if labels is not None:
            raise InvalidInputError("a VQ-VAE's decoder takes no labels (its prior may: see sample)")
        return {"z_q": latents}
    if labels is not None and len(latents) == 1 < len(labels):  # one z drawn as many classes: an analogy
        latents = np.repeat(latents, len(labels), axis=0)
    label_array = check_labels(model, labels, len(latents))
    return {"z": latents} | ({"labels": label_array} if label_array is not None else {})


def decode(model: LoadedModel, latents: np.ndarray, labels: list[int] | None = None) -> np.ndarray:
    """Continuous latents -> images (N, C, H, W) in [0, 1]."""
    return model.run("decoder", decoder_feeds(model, latents, labels))[0]


async def decode_async(model: LoadedModel, latents: np.ndarray, labels: list[int] | None = None) -> np.ndarray:
    """`decode` for the event loop."""
    return (await model.run_async("decoder", decoder_feeds(model, latents, labels)))[0]


def lookup(model: LoadedModel, codes: np.ndarray) -> np.ndarray:
    """Codes (N, h, w) -> z_q (N, D, h, w) = codebook[codes]."""
    return model.codebook[codes].transpose(0, 3, 1, 2)


def code_feeds(model: LoadedModel, codes: np.ndarray, labels: list[int] | None) -> tuple[Feeds, Callable]:
    """Checked codes, and how a window of them becomes the decoder's z_q: looked up a tile at a time, so a large grid
    never holds its whole z_q. `labels` only to be refused the same way as everywhere (the VQ decoder takes none)."""
    if labels is not None:
        raise InvalidInputError("a VQ-VAE's decoder takes no labels (its prior may: see sample)")
    return {"codes": check_codes(model, codes)}, lambda window: {"z_q": lookup(model, window)}


def decode_codes(model: LoadedModel, codes: np.ndarray, labels: list[int] | None = None) -> np.ndarray:
    """Code grids (N, h, w) -> images (N, C, h * stride, w * stride)."""
    return model.run("decoder", *code_feeds(model, codes, labels))[0]


async def decode_codes_async(model: LoadedModel, codes: np.ndarray, labels: list[int] | None = None) -> np.ndarray:
    """`decode_codes` for the event loop."""
    return (await model.run_async("decoder", *code_feeds(model, codes, labels)))[0]


def nearest_codes(model: LoadedModel, z: np.ndarray) -> np.ndarray:
    """Continuous latents (N, D, h, w) -> the codes the encoder would pick (N, h, w): the nearest
    codebook entries, each distance plus the code's penalty when the package has one."""
    n, d, h, w = z.shape
    flat = z.transpose(0, 2, 3, 1).reshape(-1, d)
    costs = (model.codebook**2).sum(1) - 2 * flat @ model.codebook.T
    if model.code_penalty is not None:
        costs += model.code_penalty
    return costs.argmin(1).reshape(n, h, w)


def reconstruct(model: LoadedModel, images: np.ndarray, labels: list[int] | None = None) -> dict[str, np.ndarray]:
    """Encode, then decode: a VQ-VAE through its codes, a VAE through its posterior means."""
    encoded = encode(model, images)
    if model.manifest.kind == "vae":
        return {"images": decode(model, encoded["mean"], labels), "latents": encoded["mean"]}
    return {"images": decode_codes(model, encoded["codes"], labels), "codes": encoded["codes"]}


def inpaint(
    model: LoadedModel,
    image: np.ndarray,
    missing: np.ndarray,
    iterations: int,
    seed: int,
    labels: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """Fill the missing pixels by iterating encode -> sample z -> decode, keeping the observed pixels
    (Rezende et al. 2014, section 6: a Markov chain whose stationary distribution is p(x_missing | x_observed))."""
    require_kind(model, "vae", "inpaint")
    current = check_images(model, image[None]).copy()
    if missing.shape != current.shape[2:] or missing.dtype != bool:
        raise InvalidInputError(f"mask must be booleans of shape {list(current.shape[2:])} (true = missing)")
    current[..., missing] = 0.5  # an uninformative start
    for step in range(iterations):
        encoded = encode(model, current)
        z = posterior_sample(encoded["mean"], encoded["logvar"], seed + step)
        current[..., missing] = decode(model, z, labels)[..., missing]
    return {"images": current, "latents": encode(model, current)["mean"]}
