"""The v1 API: list and describe models; encode, decode, sample, interpolate, reconstruct.

Handlers validate the request, call the inference layer, and shape the reply. Encode and decode, the hot
routes, await their batch in the event loop and validate their query string with one pydantic model
(payloads.parse_query) rather than FastAPI's dependencies; the longer operations run in a worker thread.
"""

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from service import inference
from service.deps import ModelDep, RegistryDep, SettingsDep, lookup_model
from service.errors import InvalidInputError, UnsupportedMediaTypeError
from service.registry import LoadedModel
from service.routes.payloads import (
    as_array,
    base64_image,
    check_count,
    images_response,
    json_body_schema,
    json_response,
    model_fields,
    parameters_schema,
    parse_json,
    parse_query,
    read_images,
)
from service.schemas import (
    FORMAT_HELP,
    DecodeIn,
    DecodeQuery,
    EncodeOut,
    EncodeQuery,
    Endpoint,
    ErrorOut,
    ImageFormat,
    ImagesIn,
    ImagesOut,
    InpaintIn,
    InterpolateIn,
    SampleIn,
    TraverseIn,
)


async def require_json(request: Request) -> None:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaTypeError("send a JSON body (Content-Type: application/json)")


ERRORS = {status: {"model": ErrorOut} for status in (401, 404, 413, 415, 422, 503)}
IMAGE_RESPONSES = {200: {"model": ImagesOut, "content": {"image/png": {}}}, **ERRORS}
FormatQuery = Annotated[ImageFormat, Query(alias="format", description=FORMAT_HELP)]
router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERRORS)
JSON_ONLY = [Depends(require_json)]  # routes whose body is JSON answer 415 to anything else


def describe(model: LoadedModel, registry: RegistryDep) -> dict:
    return {
        **model_fields(model),
        "kind": model.manifest.kind,
        "versions": sorted(registry.models[model.id]),
        "manifest": model.manifest.model_dump(mode="json"),
    }


@router.get("")
def list_models(registry: RegistryDep) -> dict:
    """Every loaded model (newest version) and every package that failed to load, with the reason."""
    return {
        "models": [describe(registry.get(model_id), registry) for model_id in sorted(registry.models)],
        "unavailable": [{"id": u.id, "version": u.version, "reason": u.reason} for u in registry.unavailable],
    }


@router.get("/{model_id}")
def get_model(model: ModelDep, registry: RegistryDep) -> dict:
    """The manifest, the versions on offer and the execution provider in use."""
    return describe(model, registry)


LabelsQuery = Annotated[list[int] | None, Query(description="class-conditional VAE: the class of each image")]


@router.post(
    "/{model_id}/encode",
    response_model=EncodeOut,
    openapi_extra=json_body_schema(ImagesIn, multipart=True) | parameters_schema(EncodeQuery),
)
async def encode(request: Request) -> Response:
    """Images -> VQ-VAE code grids (N, h, w) (+ z_e); VAE posterior mean and logvar (N, Z) (+ a sample z)."""
    query = parse_query(EncodeQuery, request)
    model, include = lookup_model(request, query.version), query.include
    kind = model.manifest.kind
    if include is not None and include != {"vqvae": "z_e", "vae": "sample"}[kind]:
        raise InvalidInputError(f"include={include} does not apply to a {kind} model")
    with model.expecting("encoder"):
        images = await read_images(request, model, request.app.state.settings)
        result = await inference.encode_async(model, images)
    if kind == "vae":
        body = {**model_fields(model), "mean": result["mean"].tolist(), "logvar": result["logvar"].tolist()}
        if include == "sample":
            draw_seed = query.seed if query.seed is not None else secrets.randbelow(2**31)
            body |= {
                "z": inference.posterior_sample(result["mean"], result["logvar"], draw_seed).tolist(),
                "seed": draw_seed,
            }
        return json_response(body)
    body = {**model_fields(model), "codes": result["codes"].tolist()}
    if include == "z_e":
        body["z_e"] = result["z_e"].tolist()
    return json_response(body)


@router.post(
    "/{model_id}/reconstruct", responses=IMAGE_RESPONSES, openapi_extra=json_body_schema(ImagesIn, multipart=True)
)
async def reconstruct(
    request: Request,
    model: ModelDep,
    settings: SettingsDep,
    labels: LabelsQuery = None,
    image_format: FormatQuery = "png",
) -> Response:
    """Encode, then decode: images -> their reconstructions and codes (VQ-VAE) or latents (VAE)."""
    with model.expecting("encoder"):
        images = await read_images(request, model, settings)
        result = await run_in_threadpool(inference.reconstruct, model, images, labels)
    return images_response(request, model, result.pop("images"), image_format, **result)


@router.post(
    "/{model_id}/decode",
    responses=IMAGE_RESPONSES,
    openapi_extra=json_body_schema(DecodeIn) | parameters_schema(DecodeQuery),
)
async def decode(request: Request) -> Response:
    """VQ-VAE code grids (N, h, w), or continuous latents -> images. A class-conditional VAE takes
    `labels` too: one z decoded as every class is an analogy (Kingma et al. 2014)."""
    await require_json(request)
    query = parse_query(DecodeQuery, request)
    model = lookup_model(request, query.version)
    body: DecodeIn = parse_json(DecodeIn, await request.body())
    given = body.codes if body.codes is not None else body.latents
    check_count("items", len(given), request.app.state.settings.MAX_IMAGES)
    with model.expecting("decoder"):
        if body.codes is not None:
            inference.require_kind(model, "vqvae", "decoding codes")
            latents = inference.code_latents(model, as_array(body.codes, "codes"))
        else:
            latents = as_array(body.latents, "latents", np.float32)
        images = await inference.decode_async(model, latents, body.labels)
    return images_response(request, model, images, query.image_format)


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


@router.post("/{model_id}/sample", responses=IMAGE_RESPONSES, dependencies=JSON_ONLY)
async def sample(
    request: Request, body: SampleIn, model: ModelDep, settings: SettingsDep, image_format: FormatQuery = "png"
) -> Response:
    """Samples from the prior: the PixelCNN over codes (with codes and mask, completes a partial
    grid), or N(0, I) for a VAE."""
    check_count("samples", body.n, settings.MAX_SAMPLES)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    codes = as_array(body.codes, "codes")
    mask = as_array(body.mask, "mask", bool)
    async with until_disconnect(request) as gone:
        result = await run_in_threadpool(
            inference.sample, model, body.n, seed, body.temperature, body.top_k, body.labels, codes, mask, gone
        )
    return images_response(request, model, result.pop("images"), image_format, seed=seed, **result)


async def endpoint_latent(model: LoadedModel, endpoint: Endpoint | TraverseIn) -> np.ndarray:
    image = None if endpoint.image is None else base64_image(endpoint.image, model)
    latent = as_array(endpoint.latent, "latent", np.float32)
    codes = as_array(getattr(endpoint, "codes", None), "codes")  # a traversal starts from an image or z only
    return await run_in_threadpool(inference.endpoint_latent, model, image, codes, latent)


@router.post("/{model_id}/interpolate", responses=IMAGE_RESPONSES, dependencies=JSON_ONLY)
async def interpolate(
    request: Request, body: InterpolateIn, model: ModelDep, settings: SettingsDep, image_format: FormatQuery = "png"
) -> Response:
    """Decoded points on a line (or great circle) between two latents; a VQ-VAE re-quantizes each."""
    check_count("steps", body.steps, settings.MAX_STEPS)
    start, end = await endpoint_latent(model, body.start), await endpoint_latent(model, body.end)
    result = await run_in_threadpool(
        inference.interpolate, model, start, end, body.steps, body.method, body.quantize, body.labels
    )
    images = result.pop("images")
    return images_response(request, model, images, image_format, columns=len(images), **result)


@router.post("/{model_id}/traverse", responses=IMAGE_RESPONSES, dependencies=JSON_ONLY)
async def traverse(
    request: Request, body: TraverseIn, model: ModelDep, settings: SettingsDep, image_format: FormatQuery = "png"
) -> Response:
    """VAE: one latent dimension swept from low to high around a z (or an image's posterior mean)."""
    check_count("steps", body.steps, settings.MAX_STEPS)
    inference.require_kind(model, "vae", "traverse")
    z = await endpoint_latent(model, body)
    result = await run_in_threadpool(
        inference.traverse, model, z, body.dimension, body.low, body.high, body.steps, body.labels
    )
    images = result.pop("images")
    return images_response(request, model, images, image_format, columns=len(images), **result)


@router.post("/{model_id}/inpaint", responses=IMAGE_RESPONSES, dependencies=JSON_ONLY)
async def inpaint(
    request: Request, body: InpaintIn, model: ModelDep, settings: SettingsDep, image_format: FormatQuery = "png"
) -> Response:
    """VAE: fill the masked pixels by iterating encode -> sample -> decode on them only."""
    check_count("iterations", body.iterations, settings.MAX_ITERATIONS)
    inference.require_kind(model, "vae", "inpaint")
    image = base64_image(body.image, model)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    missing = as_array(body.mask, "mask", bool)
    result = await run_in_threadpool(inference.inpaint, model, image, missing, body.iterations, seed, body.labels)
    return images_response(request, model, result.pop("images"), image_format, seed=seed, **result)
