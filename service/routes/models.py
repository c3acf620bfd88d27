"""The v1 API: list and describe models; encode, decode, sample, interpolate, reconstruct.

Every handler reads alike: its model and query (one pydantic model, payloads.model_and_query), its settings
(deps.py, as every route), its body (one pydantic model, or images), then one call into the inference layer and the
reply. Query and body are parsed by the handler rather than by FastAPI's per-parameter dependencies, which are dear
on the hot routes (docs/experiments/2026-11-27-serving-path.md); the OpenAPI schema is generated from the same
models. Encode and decode await their batch in the event loop; the longer operations run in a worker thread.
"""

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from contract.errors import InvalidInputError
from contract.images import DecodedImage, Resize
from service import inference, latent_paths, sampling
from service.config import Settings
from service.deps import registry_of, settings_of
from service.package import LoadedModel
from service.registry import Registry
from service.routes.payloads import (
    as_array,
    base64_image,
    check_count,
    check_pixels,
    chosen_seed,
    images_response,
    in_order,
    json_body,
    json_body_schema,
    json_lists,
    json_response,
    model_and_query,
    model_fields,
    parameters_schema,
    read_images,
    resize_report,
    shape_groups,
)
from service.schemas import (
    DecodeIn,
    EncodeOut,
    EncodeQuery,
    Endpoint,
    ErrorOut,
    ImagesIn,
    ImagesInQuery,
    ImagesOut,
    ImagesQuery,
    InpaintIn,
    InterpolateIn,
    ModelQuery,
    ReconstructQuery,
    SampleIn,
    TraverseIn,
)

ERRORS = {status: {"model": ErrorOut} for status in (401, 404, 413, 415, 422, 503)}
IMAGE_RESPONSES = {200: {"model": ImagesOut, "content": {"image/png": {}}}, **ERRORS}
router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERRORS)


def openapi(query: type[BaseModel], body: type[BaseModel] | None = None, multipart: bool = False) -> dict:
    """The OpenAPI description of a handler that reads its own query (and body)."""
    return parameters_schema(query) | (json_body_schema(body, multipart=multipart) if body else {})


def describe(model: LoadedModel, registry: Registry) -> dict:
    return {
        **model_fields(model),
        "kind": model.manifest.kind,
        "versions": sorted(registry.models[model.id]),
        "manifest": model.manifest.model_dump(mode="json"),
    }


@router.get("")
def list_models(request: Request) -> dict:
    """Every loaded model (newest version) and every package that failed to load, with the reason."""
    registry = registry_of(request)
    return {
        "models": [describe(registry.get(model_id), registry) for model_id in sorted(registry.models)],
        "unavailable": [{"id": u.id, "version": u.version, "reason": u.reason} for u in registry.unavailable],
    }


@router.get("/{model_id}", openapi_extra=openapi(ModelQuery))
def get_model(request: Request) -> dict:
    """The manifest, the versions on offer and the execution provider in use."""
    model, _ = model_and_query(request, ModelQuery)
    return describe(model, registry_of(request))


@router.post("/{model_id}/encode", response_model=EncodeOut, openapi_extra=openapi(EncodeQuery, ImagesIn, True))
async def encode(request: Request) -> Response:
    """Images -> VQ-VAE code grids (N, h, w) (+ z_e); VAE posterior mean and logvar (N, Z) (+ a sample z)."""
    model, query = model_and_query(request, EncodeQuery)
    settings = settings_of(request)
    include = query.include
    kind = model.manifest.kind
    if include is not None and include != {"vqvae": "z_e", "vae": "sample"}[kind]:
        raise InvalidInputError(f"include={include} does not apply to a {kind} model")
    with model.expecting("encoder"):
        images, resized = await read_images(request, model, settings, query.resize)
        results = [(rows, await inference.encode_async(model, batch)) for rows, batch in shape_groups(images)]
    if kind == "vae":  # one size: one batch
        mean, logvar = results[0][1]["mean"], results[0][1]["logvar"]
        body = {**model_fields(model), "mean": mean.tolist(), "logvar": logvar.tolist(), **resized}
        if include == "sample":
            seed = chosen_seed(query.seed)
            body |= {"z": inference.posterior_sample(mean, logvar, seed).tolist(), "seed": seed}
        return json_response(body)
    body = {**model_fields(model), "codes": json_lists(in_order(results, "codes")), **resized}
    if include == "z_e":
        body["z_e"] = json_lists(in_order(results, "z_e"))
    return json_response(body)


@router.post(
    "/{model_id}/reconstruct", responses=IMAGE_RESPONSES, openapi_extra=openapi(ReconstructQuery, ImagesIn, True)
)
async def reconstruct(request: Request) -> Response:
    """Encode, then decode: images -> their reconstructions and codes (VQ-VAE) or latents (VAE)."""
    model, query = model_and_query(request, ReconstructQuery)
    settings = settings_of(request)
    with model.expecting("encoder"):
        images, resized = await read_images(request, model, settings, query.resize)
        results = [
            (rows, await run_in_threadpool(inference.reconstruct, model, batch, query.labels))
            for rows, batch in shape_groups(images)
        ]
    latents = {key: in_order(results, key) for key in results[0][1] if key != "images"}
    pictures = in_order(results, "images")
    if query.resize == "native":  # back to each image's own size
        sizes = [image.source[1:] for image in images]
        pictures = [picture[:, :height, :width] for picture, (height, width) in zip(pictures, sizes, strict=True)]
    return images_response(request, model, pictures, query.image_format, **latents, **resized)


@router.post("/{model_id}/decode", responses=IMAGE_RESPONSES, openapi_extra=openapi(ImagesQuery, DecodeIn))
async def decode(request: Request) -> Response:
    """VQ-VAE code grids (N, h, w), or continuous latents -> images. A class-conditional VAE takes
    `labels` too: one z decoded as every class is an analogy (Kingma et al. 2014)."""
    model, query = model_and_query(request, ImagesQuery)
    settings = settings_of(request)
    body: DecodeIn = await json_body(request, DecodeIn)
    given = body.codes if body.codes is not None else body.latents
    check_count("items", max(len(given), len(body.labels or ())), settings.MAX_IMAGES)
    with model.expecting("decoder"):
        if body.codes is not None:
            inference.require_kind(model, "vqvae", "decoding codes")
            codes = as_array(body.codes, "codes")
            check_pixels(codes.size * inference.pixels_per_code(model), settings)
            images = await inference.decode_codes_async(model, codes, body.labels)
        else:
            latents = as_array(body.latents, "latents", np.float32)
            if model.manifest.kind == "vqvae":  # (N, D, h, w): N h w codes
                check_pixels(latents.size // model.manifest.code_dim * inference.pixels_per_code(model), settings)
            images = await inference.decode_async(model, latents, body.labels)
    analogy = len(images) > len(given)  # one z drawn as many classes: one row in a PNG grid
    return images_response(request, model, images, query.image_format, columns=len(images) if analogy else None)


@asynccontextmanager
async def until_disconnect(request: Request) -> AsyncIterator[Callable[[], bool]]:
    """A should_stop for long work: true once the client has hung up (its body is read by then, so
    the next ASGI message can only be the disconnect)."""
    gone = threading.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        yield gone.is_set
    finally:
        watcher.cancel()


@router.post("/{model_id}/sample", responses=IMAGE_RESPONSES, openapi_extra=openapi(ImagesQuery, SampleIn))
async def sample(request: Request) -> Response:
    """Samples from the prior: the PixelCNN over codes (with codes and mask, completes a partial
    grid), or N(0, I) for a VAE."""
    model, query = model_and_query(request, ImagesQuery)
    settings = settings_of(request)
    body: SampleIn = await json_body(request, SampleIn)
    check_count("samples", body.n, settings.MAX_SAMPLES)
    asked = sampling.SampleRequest(
        seed=chosen_seed(body.seed),
        n=body.n,
        temperature=body.temperature,
        top_k=body.top_k,
        labels=body.labels,
        guidance=body.guidance,
        codes=as_array(body.codes, "codes"),
        mask=as_array(body.mask, "mask", bool),
    )
    async with until_disconnect(request) as gone:
        result = await run_in_threadpool(sampling.sample, model, asked, gone)
    return images_response(request, model, result.pop("images"), query.image_format, seed=asked.seed, **result)


async def endpoint_latent(
    model: LoadedModel, endpoint: Endpoint | TraverseIn, settings: Settings, resize: Resize
) -> tuple[np.ndarray, DecodedImage | None]:
    """The endpoint's latent, and its image as decoded (for the resize report) when it was given as one."""
    decoded = base64_image(endpoint.image, model, settings, resize) if endpoint.image is not None else None
    latent = as_array(endpoint.latent, "latent", np.float32)
    codes = as_array(getattr(endpoint, "codes", None), "codes")  # a traversal starts from an image or z only
    image = decoded.pixels if decoded is not None else None
    return await run_in_threadpool(latent_paths.endpoint_latent, model, image, codes, latent), decoded


@router.post("/{model_id}/interpolate", responses=IMAGE_RESPONSES, openapi_extra=openapi(ImagesInQuery, InterpolateIn))
async def interpolate(request: Request) -> Response:
    """Decoded points on a line (or great circle) between two latents; a VQ-VAE re-quantizes each."""
    model, query = model_and_query(request, ImagesInQuery)
    settings = settings_of(request)
    body: InterpolateIn = await json_body(request, InterpolateIn)
    check_count("steps", body.steps, settings.MAX_STEPS)
    start, start_image = await endpoint_latent(model, body.start, settings, query.resize)
    end, end_image = await endpoint_latent(model, body.end, settings, query.resize)
    result = await run_in_threadpool(
        latent_paths.interpolate, model, start, end, body.steps, body.method, body.quantize, body.labels
    )
    images = result.pop("images")
    resized = resize_report(query.resize, [d for d in (start_image, end_image) if d is not None], model)
    return images_response(request, model, images, query.image_format, columns=len(images), **result, **resized)


@router.post("/{model_id}/traverse", responses=IMAGE_RESPONSES, openapi_extra=openapi(ImagesInQuery, TraverseIn))
async def traverse(request: Request) -> Response:
    """VAE: one latent dimension swept from low to high around a z (or an image's posterior mean)."""
    model, query = model_and_query(request, ImagesInQuery)
    settings = settings_of(request)
    body: TraverseIn = await json_body(request, TraverseIn)
    check_count("steps", body.steps, settings.MAX_STEPS)
    inference.require_kind(model, "vae", "traverse")
    z, image = await endpoint_latent(model, body, settings, query.resize)
    result = await run_in_threadpool(
        latent_paths.traverse, model, z, body.dimension, body.low, body.high, body.steps, body.labels
    )
    images, resized = result.pop("images"), resize_report(query.resize, [image] if image is not None else [], model)
    return images_response(request, model, images, query.image_format, columns=len(images), **result, **resized)


@router.post("/{model_id}/inpaint", responses=IMAGE_RESPONSES, openapi_extra=openapi(ImagesInQuery, InpaintIn))
async def inpaint(request: Request) -> Response:
    """VAE: fill the masked pixels by iterating encode -> sample -> decode on them only."""
    model, query = model_and_query(request, ImagesInQuery)
    settings = settings_of(request)
    body: InpaintIn = await json_body(request, InpaintIn)
    check_count("iterations", body.iterations, settings.MAX_ITERATIONS)
    inference.require_kind(model, "vae", "inpaint")
    image = base64_image(body.image, model, settings, query.resize)
    seed = chosen_seed(body.seed)
    missing = as_array(body.mask, "mask", bool)
    result = await run_in_threadpool(
        inference.inpaint, model, image.pixels, missing, body.iterations, seed, body.labels
    )
    resized = resize_report(query.resize, [image], model)
    return images_response(request, model, result.pop("images"), query.image_format, seed=seed, **result, **resized)
