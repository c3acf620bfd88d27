"""Turning HTTP bodies into arrays and arrays into HTTP bodies (shared by the v1 routes)."""

import base64
import binascii
import json
import math
import secrets
import typing
from typing import Any, TypeVar

import numpy as np
from fastapi import Request, Response
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from contract.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from contract.images import DecodedImage, Resize, decode_image, png_bytes, tile, upright_size
from service.config import Settings
from service.deps import registry_of
from service.multipart import form_files
from service.package import LoadedModel
from service.schemas import ImageFormat, ImagesIn, ModelQuery

QueryModel = TypeVar("QueryModel", bound=ModelQuery)
BodyModel = TypeVar("BodyModel", bound=BaseModel)


def check_count(what: str, count: int, limit: int) -> None:
    if count > limit:
        raise InvalidInputError(f"{count} {what} exceed the limit of {limit} per request")


def check_pixels(pixels: int, settings: Settings) -> None:
    """A request's images (or the images its codes decode to) together: at most MAX_REQUEST_PIXELS."""
    if pixels > settings.MAX_REQUEST_PIXELS:
        raise PayloadTooLargeError(
            f"the images of one request may have at most {settings.MAX_REQUEST_PIXELS} pixels together (a code "
            f"counts stride^2); these have {pixels}: send fewer or smaller ones per request"
        )


def as_array(data: Any, what: str, dtype: type | None = None) -> np.ndarray | None:
    """Nested JSON lists -> an array; ragged lists are the client's mistake (422), not ours."""
    if data is None:
        return None
    try:
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, which the inference layer refuses
            return np.asarray(data, dtype=dtype)
    except (ValueError, OverflowError):
        raise InvalidInputError(
            f"{what} must be rectangular: every item of one request the same shape, every row the same length"
        ) from None


def image_file(data: bytes, model: LoadedModel, settings: Settings, resize: Resize) -> DecodedImage:
    stride = model.manifest.size_free.stride if model.manifest.size_free else None
    max_pixels = min(settings.MAX_IMAGE_PIXELS, settings.MAX_REQUEST_PIXELS)
    return decode_image(data, model.manifest.image_shape, resize, max_pixels, stride)


def image_files(files: list[bytes], model: LoadedModel, settings: Settings, resize: Resize) -> list[DecodedImage]:
    """Every file decoded, once the headers of all of them have been read and their pixels together found within
    MAX_REQUEST_PIXELS (a single file's own limit is checked as it is decoded)."""
    check_count("images", len(files), settings.MAX_IMAGES)
    if len(files) > 1:
        check_pixels(sum(w * h for w, h in map(upright_size, files)), settings)
    return [image_file(data, model, settings, resize) for data in files]


def base64_image(text: str, model: LoadedModel, settings: Settings, resize: Resize = "none") -> DecodedImage:
    return image_file(base64_bytes(text), model, settings, resize)


def resize_report(resize: Resize, decoded: list[DecodedImage], model: LoadedModel) -> dict[str, Any]:
    """What was done to the images, for the answer: nothing to say unless they were resized, padded or converted."""
    if resize == "none" or not decoded:
        return {}
    sources = [list(image.source) for image in decoded]
    if resize == "native":  # each at its own size, padded to the next multiple of the stride
        return {"resize": {"mode": resize, "to": [list(image.pixels.shape) for image in decoded], "from": sources}}
    return {"resize": {"mode": resize, "to": list(model.manifest.image_shape), "from": sources}}


def parse_json(model_class: type[BaseModel], raw: bytes) -> Any:
    try:
        return model_class.model_validate_json(raw)
    except ValidationError as error:
        raise InvalidInputError(validation_message(error)) from None


def parse_query(model_class: type[QueryModel], request: Request) -> QueryModel:
    """The query string, validated by one pydantic model; a list field takes every value of its repeated key."""
    params = request.query_params
    lists = {field.alias or name for name, field in model_class.model_fields.items() if field_is_list(field)}
    values = {key: params.getlist(key) if key in lists else params[key] for key in params}
    try:
        return model_class.model_validate(values)
    except ValidationError as error:
        raise InvalidInputError(validation_message(error, "query")) from None


def field_is_list(field: FieldInfo) -> bool:
    return any(typing.get_origin(t) is list for t in (field.annotation, *typing.get_args(field.annotation)))


def model_and_query(request: Request, model_class: type[QueryModel]) -> tuple[LoadedModel, QueryModel]:
    """The route's {model_id} in the query's version (or the newest), and the validated query."""
    query = parse_query(model_class, request)
    return registry_of(request).get(request.path_params["model_id"], query.version), query


def chosen_seed(seed: int | None) -> int:
    """The request's seed, or a random one that the answer then names, so that the draw can be repeated."""
    return seed if seed is not None else secrets.randbelow(2**31)


async def json_body(request: Request, model_class: type[BodyModel]) -> BodyModel:
    """The JSON body, validated by one pydantic model; 415 for anything but JSON."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaTypeError("send a JSON body (Content-Type: application/json)")
    return parse_json(model_class, await request.body())


def parameters_schema(model_class: type[BaseModel]) -> dict:
    """OpenAPI parameters of a model route that reads them itself: {model_id} and the query (parse_query)."""
    model_id = {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string", "title": "Model Id"}}
    query = [
        {"name": name, "in": "query", "required": False, "description": field.get("description", ""), "schema": field}
        for name, field in model_class.model_json_schema()["properties"].items()
    ]
    return {"parameters": [model_id, *query]}


def validation_message(error: ValidationError | Any, location: str = "") -> str:
    """pydantic's errors as one line: `field.path: message; ...` (`query.field` for a query parameter)."""
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in (location, *item.get("loc", ())) if p not in ("body", ""))
        parts.append(f"{where}: {item['msg']}" if where else item["msg"])
    return "; ".join(parts)


def base64_bytes(text: str) -> bytes:
    try:
        return base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("images must be base64-encoded PNG or JPEG files") from None


async def read_images(
    request: Request, model: LoadedModel, settings: Settings, resize: Resize = "none"
) -> tuple[list[DecodedImage] | np.ndarray, dict[str, Any]]:
    """Multipart files in field `images`, or JSON {"images": [base64]} / {"arrays": [...]}: the decoded files (a
    size-free model's may differ in size) or the arrays (N, C, H, W) as sent, and what `resize` did to the files."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        files = form_files(await request.body(), content_type, "images")
        if not files:
            raise InvalidInputError("multipart field 'images' holds no files")
    elif content_type.startswith("application/json"):
        body: ImagesIn = parse_json(ImagesIn, await request.body())
        if body.arrays is not None:
            check_count("images", len(body.arrays), settings.MAX_IMAGES)
            arrays = as_array(body.arrays, "arrays", np.float32)
            check_pixels(len(arrays) * math.prod(arrays.shape[-2:]), settings)
            return arrays, {}
        files = [base64_bytes(text) for text in body.images]
    else:
        raise UnsupportedMediaTypeError("send images as multipart/form-data (field 'images') or application/json")
    decoded = image_files(files, model, settings, resize)
    return decoded, resize_report(resize, decoded, model)


def json_bytes(body: Any) -> bytes:
    """The body as compact JSON, as starlette writes it. A NaN or an infinity has no JSON form: a model driven
    there by its inputs is the client's 422 with a reason, not a 500 from the encoder."""
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except ValueError:
        raise InvalidInputError(
            "the model's output is not finite (NaN or Inf) for these inputs: their magnitude is beyond what it can take"
        ) from None


def json_response(body: Any) -> Response:
    return Response(json_bytes(body), media_type="application/json")


def model_fields(model: LoadedModel) -> dict[str, Any]:
    return {"model": model.id, "version": model.version, "provider": model.provider}


def wants_png(request: Request) -> bool:
    return "image/png" in request.headers.get("accept", "")


def images_response(
    request: Request,
    model: LoadedModel,
    images: np.ndarray | list[np.ndarray],
    image_format: ImageFormat,
    columns: int | None = None,
    **fields: Any,
) -> Response:
    """One PNG grid when the client accepts image/png; else JSON with base64 PNGs or raw arrays (images of several
    sizes, from a size-free model, only as JSON)."""
    if wants_png(request):
        if len({image.shape for image in images}) > 1:
            raise InvalidInputError("a PNG grid holds images of one size; these differ: ask for JSON instead")
        grid = tile(np.asarray(images), columns or math.ceil(math.sqrt(len(images))))
        headers = {"X-Model": model.id, "X-Model-Version": str(model.version), "X-Provider": model.provider}
        if "resize" in fields:  # what the JSON answer would say under "resize"
            headers["X-Resize"] = json.dumps(fields["resize"], separators=(",", ":"))
        return Response(png_bytes(grid), media_type="image/png", headers=headers)
    body = model_fields(model)
    if image_format == "array":
        body["arrays"] = json_lists(images)
    else:
        body["images"] = [base64.b64encode(png_bytes(image)).decode() for image in images]
    body.update({k: json_lists(v) for k, v in fields.items()})
    return json_response(body)


def shape_groups(images: list[DecodedImage] | np.ndarray) -> list[tuple[list[int], np.ndarray]]:
    """The images as batches of one shape each, with the positions they hold in the request."""
    if isinstance(images, np.ndarray):
        return [(list(range(len(images))), images)]
    positions: dict[tuple, list[int]] = {}
    for i, image in enumerate(images):
        positions.setdefault(image.pixels.shape, []).append(i)
    return [(rows, np.stack([images[i].pixels for i in rows])) for rows in positions.values()]


def in_order(results: list[tuple[list[int], dict[str, np.ndarray]]], key: str) -> np.ndarray | list[np.ndarray]:
    """One output of batches run by shape_groups, back in the request's order: the array itself for one batch."""
    if len(results) == 1:
        return results[0][1][key]
    ordered: list = [None] * sum(len(rows) for rows, _ in results)
    for rows, result in results:
        for row, value in zip(rows, result[key], strict=True):
            ordered[row] = value
    return ordered


def json_lists(values: Any) -> Any:
    """Arrays, or lists of arrays of several shapes, as JSON lists; anything else as it is."""
    if isinstance(values, np.ndarray):
        return values.tolist()
    if isinstance(values, list) and values and isinstance(values[0], np.ndarray):
        return [value.tolist() for value in values]
    return values


def json_body_schema(*models: type[BaseModel], multipart: bool = False) -> dict:
    """OpenAPI request body for routes that parse their own body (JSON, and multipart uploads)."""
    content: dict[str, Any] = {"application/json": {"schema": models[0].model_json_schema()}}
    if multipart:
        upload = {"type": "array", "items": {"type": "string", "format": "binary"}}
        content["multipart/form-data"] = {
            "schema": {"type": "object", "properties": {"images": upload}, "required": ["images"]}
        }
    return {"requestBody": {"required": True, "content": content}}
