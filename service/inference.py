"""What the service does with a model, in numpy and onnxruntime only.

Routes validate requests and call these functions; tests call them without HTTP. Inputs that
are wrong for the model (shape, range, NaN, codes outside the codebook) raise InvalidInputError.
Both kinds share the operations where the papers do: a VQ-VAE's latent is z_e / z_q (D, h, w) and
its prior is the PixelCNN; a VAE's latent is z (Z,) and its prior N(0, I). `inpaint` is a VAE operation
(Rezende et al. 2014); paths through latent space (interpolation, traversal) are in latent_paths.py.
"""

import numpy as np

from contract.errors import InvalidInputError
from contract.sampling import StopFn, any_classes
from service.batching import Feeds
from service.package import LoadedModel
from service.prior import draw_codes, no_label

# |latent value| accepted anywhere (latents, endpoints, traversal ends): far beyond what any trained model's encoder
# gives, and far enough from float32's limit (3.4e38) that no interpolation or decoder layer overflows.
LATENT_BOUND = 1e6


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
    if not (images.min() >= 0 and images.max() <= 1):  # false for NaN too, and infinities are out of range
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
    if labels is None and no_label(model) is not None:
        return np.full(n, no_label(model), np.int64)
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


def code_latents(model: LoadedModel, codes: np.ndarray) -> np.ndarray:
    """Checked codes (N, h, w) -> the decoder's z_q."""
    return lookup(model, check_codes(model, codes))


def decode_codes(model: LoadedModel, codes: np.ndarray, labels: list[int] | None = None) -> np.ndarray:
    """Code grids -> images; `labels` only to be refused the same way as everywhere (the VQ decoder takes none)."""
    return decode(model, code_latents(model, codes), labels)


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


def sample(
    model: LoadedModel,
    n: int,
    seed: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    labels: list[int] | None = None,
    codes: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    should_stop: StopFn | None = None,
    guidance: float | None = None,
) -> dict[str, np.ndarray]:
    """Ancestral samples from the prior; with `codes` and `mask`, only masked positions are drawn. On a prior whose
    labels are optional, labelled samples have classifier-free guidance (`guidance`, else the package's), and a
    sample without a label is drawn as its manifest says (prior.unlabelled), the labels drawn then returned.
    A VAE draws z ~ N(0, temperature^2 I), sample i from seed + i."""
    if temperature <= 0 or not np.isfinite(temperature):
        raise InvalidInputError("temperature must be a positive number")
    if model.manifest.kind == "vae":
        guidance_weight(model, False, guidance)  # refused when given
        if top_k is not None or codes is not None or mask is not None:
            raise InvalidInputError("top_k, codes and mask apply to VQ-VAE code grids; a VAE samples z ~ N(0, I)")
        size = model.manifest.latent_shape[0]
        z = temperature * np.stack([np.random.default_rng(seed + i).standard_normal(size) for i in range(n)])
        z = z.astype(np.float32)
        return {"images": decode(model, z, labels), "latents": z}
    label_array = check_labels(model, labels, n)
    seeds = seed + np.arange(n, dtype=np.int64)
    labels_optional = no_label(model) is not None
    drawn = labels is None and labels_optional and model.manifest.prior.unlabelled == "any_class"
    if drawn:
        label_array = any_classes(seeds, model.manifest.prior.num_classes)
    guided = labels_optional and (labels is not None or drawn)
    weight = guidance_weight(model, guided, guidance)
    if "prior" not in model.sessions:
        raise InvalidInputError(f"model {model.id} has no prior to sample from")
    if top_k is not None and not 1 <= top_k <= model.manifest.num_codes:
        raise InvalidInputError(f"top_k must lie in [1, {model.manifest.num_codes}] (the codebook's size)")
    grid = tuple(model.manifest.latent_shape[1:])
    start, where = completion_grid(model, n, grid, codes, mask)
    feeds = {
        "codes": start,
        "mask": where,
        "seeds": seeds,
        "temperature": np.full(n, temperature),
        "top_k": np.full(n, top_k or 0, np.int64),
        "guidance": np.full(n, weight),
    } | ({} if label_array is None else {"labels": label_array})
    if sampler := model.batchers.get("sample"):
        sampled = sampler(feeds, should_stop)[0]  # merged with concurrent requests for this model
    else:
        sampled = draw_codes(model, feeds, should_stop)
    result = {"images": decode_codes(model, sampled), "codes": sampled}
    return result | ({"guidance": weight} if guided else {}) | ({"labels": label_array} if drawn else {})


def guidance_weight(model: LoadedModel, can_guide: bool, guidance: float | None) -> float:
    """The classifier-free guidance of labelled samples on a prior that learnt "no label" (`can_guide`): as asked,
    else the package's; refused elsewhere."""
    if guidance is not None and guidance > 0 and not can_guide:
        raise InvalidInputError(
            "guidance needs labels, on a VQ-VAE prior that also learnt 'no label' (manifest prior.labels_optional)"
        )
    if not can_guide:
        return 0.0
    return model.manifest.prior.guidance if guidance is None else float(guidance)


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
