"""The v1 API: list and describe models; encode, decode, sample, interpolate, reconstruct.

Handlers validate the request, call the inference layer in a worker thread, and shape the reply.
"""

import secrets
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service import inference
from service.deps import ModelDep, RegistryDep, SettingsDep
from service.errors import UnsupportedMediaTypeError
from service.registry import LoadedModel
from service.routes.payloads import (
    ImageFormat,
    base64_image,
    check_count,
    images_response,
    json_body_schema,
    model_fields,
    read_images,
)
from service.schemas import DecodeIn, EncodeOut, Endpoint, ErrorOut, ImagesIn, ImagesOut, InterpolateIn, SampleIn


def require_json(request: Request) -> None:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaTypeError("send a JSON body (Content-Type: application/json)")


ERRORS = {status: {"model": ErrorOut} for status in (401, 404, 413, 415, 422, 503)}
IMAGE_RESPONSES = {200: {"model": ImagesOut, "content": {"image/png": {}}}, **ERRORS}
FormatQuery = Annotated[ImageFormat, Query(alias="format", description="png: base64 PNGs; array: raw pixels")]
router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERRORS)
json_router = APIRouter(dependencies=[Depends(require_json)])  # included below, under the same prefix


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


@router.post("/{model_id}/encode", response_model=EncodeOut, openapi_extra=json_body_schema(ImagesIn, multipart=True))
async def encode(
    request: Request,
    model: ModelDep,
    settings: SettingsDep,
    include: Annotated[
        Literal["z_e"] | None, Query(description="z_e: also return the continuous encoder output")
    ] = None,
) -> JSONResponse:
    """Images -> code grids (N, h, w), and z_e (N, D, h, w) on request."""
    with model.expecting("encoder"):
        images = await read_images(request, model, settings)
        result = await run_in_threadpool(inference.encode, model, images)
    body = {**model_fields(model), "codes": result["codes"].tolist()}
    if include == "z_e":
        body["z_e"] = result["z_e"].tolist()
    return JSONResponse(body)


@router.post(
    "/{model_id}/reconstruct", responses=IMAGE_RESPONSES, openapi_extra=json_body_schema(ImagesIn, multipart=True)
)
async def reconstruct(
    request: Request, model: ModelDep, settings: SettingsDep, image_format: FormatQuery = "png"
) -> Response:
    """Encode, then decode: images -> their reconstructions and codes."""
    with model.expecting("encoder"):
        images = await read_images(request, model, settings)
        result = await run_in_threadpool(inference.reconstruct, model, images)
    return images_response(request, model, result["images"], image_format, codes=result["codes"])


@json_router.post("/{model_id}/decode", responses=IMAGE_RESPONSES)
async def decode(
    request: Request, body: DecodeIn, model: ModelDep, settings: SettingsDep, image_format: FormatQuery = "png"
) -> Response:
    """Code grids (N, h, w) or continuous latents (N, D, h, w) -> images."""
    given = body.codes if body.codes is not None else body.latents
    check_count("items", len(given), settings.MAX_IMAGES)
    with model.expecting("decoder"):
        if body.codes is not None:
            images = await run_in_threadpool(inference.decode_codes, model, np.asarray(body.codes))
        else:
            images = await run_in_threadpool(inference.decode, model, np.asarray(body.latents, dtype=np.float32))
    return images_response(request, model, images, image_format)


@json_router.post("/{model_id}/sample", responses=IMAGE_RESPONSES)
async def sample(
    request: Request, body: SampleIn, model: ModelDep, settings: SettingsDep, image_format: FormatQuery = "png"
) -> Response:
    """Ancestral samples from the prior; with codes and mask, completes a partial code grid."""
    check_count("samples", body.n, settings.MAX_SAMPLES)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    codes = None if body.codes is None else np.asarray(body.codes)
    mask = None if body.mask is None else np.asarray(body.mask, dtype=bool)
    result = await run_in_threadpool(
        inference.sample, model, body.n, seed, body.temperature, body.top_k, body.labels, codes, mask
    )
    return images_response(request, model, result["images"], image_format, codes=result["codes"], seed=seed)


async def endpoint_latent(model: LoadedModel, endpoint: Endpoint) -> np.ndarray:
    image = None if endpoint.image is None else base64_image(endpoint.image, model)
    latent = None if endpoint.latent is None else np.asarray(endpoint.latent, dtype=np.float32)
    return await run_in_threadpool(inference.endpoint_latent, model, image, endpoint.codes, latent)


@json_router.post("/{model_id}/interpolate", responses=IMAGE_RESPONSES)
async def interpolate(
    request: Request, body: InterpolateIn, model: ModelDep, settings: SettingsDep, image_format: FormatQuery = "png"
) -> Response:
    """Decoded points on a line (or great circle) between two latents, optionally re-quantized."""
    check_count("steps", body.steps, settings.MAX_STEPS)
    start, end = await endpoint_latent(model, body.start), await endpoint_latent(model, body.end)
    result = await run_in_threadpool(inference.interpolate, model, start, end, body.steps, body.method, body.quantize)
    images = result.pop("images")
    return images_response(request, model, images, image_format, columns=len(images), **result)


router.include_router(json_router)
