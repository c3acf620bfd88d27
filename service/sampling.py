"""A sample request, top to bottom: its checks and defaults, its labels and classifier-free guidance, the rows it
sends to the model's sample batcher (which runs prior.py's sampler on the rows of every request it merged), and
the decoding of what comes back. A VAE draws z ~ N(0, temperature^2 I) instead.

Sample i of a request draws from its own random stream, seeded with seed + i, so that a sample does not depend on
how many were asked for beside it or on how requests were batched.
"""

from dataclasses import dataclass

import numpy as np

from contract.errors import InvalidInputError
from contract.sampling import StopFn, any_classes
from service.inference import check_codes, check_labels, decode, decode_codes
from service.package import LoadedModel
from service.prior import draw_codes


@dataclass(frozen=True, kw_only=True)
class SampleRequest:
    seed: int  # sample i uses seed + i
    n: int = 1
    temperature: float | None = None  # None: the package's (manifest prior.temperature), 1 for a VAE
    top_k: int | None = None  # only the k most likely codes (VQ-VAE)
    labels: list[int] | None = None  # one, or one per sample (class-conditional models)
    guidance: float | None = None  # classifier-free guidance of labelled samples; None: the package's
    codes: np.ndarray | None = None  # completion: a partial grid (h, w), or one per sample (n, h, w) ...
    mask: np.ndarray | None = None  # ... and where to sample, true (same shapes)


def sample(model: LoadedModel, request: SampleRequest, should_stop: StopFn | None = None) -> dict[str, np.ndarray]:
    """Ancestral samples from the prior; with `codes` and `mask`, only the masked positions are drawn."""
    if request.temperature is not None and not (request.temperature > 0 and np.isfinite(request.temperature)):
        raise InvalidInputError("temperature must be a positive number")
    if model.manifest.kind == "vae":
        return sample_vae(model, request)
    return sample_vqvae(model, request, should_stop)


def sample_vae(model: LoadedModel, request: SampleRequest) -> dict[str, np.ndarray]:
    guidance_weight(model, can_guide=False, guidance=request.guidance)  # refused when given
    if request.top_k is not None or request.codes is not None or request.mask is not None:
        raise InvalidInputError("top_k, codes and mask apply to VQ-VAE code grids; a VAE samples z ~ N(0, I)")
    size = model.manifest.latent_shape[0]
    noise = [np.random.default_rng(request.seed + i).standard_normal(size) for i in range(request.n)]
    temperature = 1.0 if request.temperature is None else request.temperature
    z = (temperature * np.stack(noise)).astype(np.float32)
    return {"images": decode(model, z, request.labels), "latents": z, "temperature": temperature}


def sample_vqvae(model: LoadedModel, request: SampleRequest, should_stop: StopFn | None) -> dict[str, np.ndarray]:
    """On a prior whose labels are optional, labelled samples have classifier-free guidance, and a sample without a
    label is drawn as the manifest says (prior.unlabelled): from "no label", or from a class drawn for it, which
    the answer then names. Guidance and temperature not asked for are the package's defaults, which may differ
    for samples with and without a label (manifest prior)."""
    n, prior = request.n, model.manifest.prior
    labels = check_labels(model, request.labels, n)
    seeds = request.seed + np.arange(n, dtype=np.int64)
    labels_optional, labelled = model.manifest.no_label is not None, request.labels is not None
    drawn = not labelled and labels_optional and prior.unlabelled == "any_class"
    if drawn:
        stratified = prior.class_draw == "stratified"
        labels = any_classes(seeds, prior.num_classes, prior.class_frequencies, stratified=stratified)
    guided = labels_optional and (labelled or drawn)
    weight = guidance_weight(model, can_guide=guided, guidance=request.guidance, labelled=labelled)
    temperature = prior.default_temperature(labelled=labelled) if request.temperature is None else request.temperature
    if "prior" not in model.sessions:
        raise InvalidInputError(f"model {model.id} has no prior to sample from")
    if request.top_k is not None and not 1 <= request.top_k <= model.manifest.num_codes:
        raise InvalidInputError(f"top_k must lie in [1, {model.manifest.num_codes}] (the codebook's size)")
    start, where = completion_grid(model, n, request.codes, request.mask)
    feeds = {
        "codes": start,
        "mask": where,
        "seeds": seeds,
        "temperature": np.full(n, temperature),
        "top_k": np.full(n, request.top_k or 0, np.int64),
        "guidance": np.full(n, weight),
    } | ({} if labels is None else {"labels": labels})
    if sampler := model.batchers.get("sample"):
        sampled = sampler(feeds, should_stop)[0]  # merged with concurrent requests for this model
    else:
        sampled = draw_codes(model, feeds, should_stop)
    result = {"images": decode_codes(model, sampled), "codes": sampled, "temperature": temperature}
    return result | ({"guidance": weight} if guided else {}) | ({"labels": labels} if drawn else {})


def guidance_weight(model: LoadedModel, *, can_guide: bool, guidance: float | None, labelled: bool = True) -> float:
    """The classifier-free guidance of labelled samples (or of classes drawn for unlabelled ones) on a prior that
    learnt "no label" (`can_guide`): as asked, else the package's default for them; refused elsewhere."""
    if guidance is not None and guidance > 0 and not can_guide:
        raise InvalidInputError(
            "guidance needs labels, on a VQ-VAE prior that also learnt 'no label' (manifest prior.labels_optional)"
        )
    if not can_guide:
        return 0.0
    return model.manifest.prior.default_guidance(labelled=labelled) if guidance is None else float(guidance)


def completion_grid(
    model: LoadedModel, n: int, codes: np.ndarray | None, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Starting codes and the positions to sample, (n, h, w) each; everything when no codes are given."""
    grid = tuple(model.manifest.latent_shape[1:])
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
    if codes.shape != mask.shape:  # the prior's grid, also for a size-free model's codes
        raise InvalidInputError(f"give one code grid of shape {grid}, or one per sample ({n}); got {list(codes.shape)}")
    return check_codes(model, codes), mask
