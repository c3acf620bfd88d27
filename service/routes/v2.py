"""The Open Inference Protocol (KServe v2) over HTTP, so that standard clients (tritonclient, KServe) work
unchanged: JSON (and the binary tensor extension, which tritonclient uses by default) in and out of dataplane.py's
request and response, which the gRPC server shares."""

import re

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from contract.errors import InvalidInputError
from service import dataplane
from service.dataplane import InferenceRequest, InferenceResponse, InputTensor
from service.deps import registry_of, settings_of
from service.routes.payloads import json_body_schema, json_bytes, json_response, parse_json
from service.schemas import InferRequest

router = APIRouter(prefix="/v2", tags=["kserve-v2"])
BINARY_HEADER = "inference-header-content-length"


@router.get("/health/live")
def live() -> dict:
    return {"live": True}


@router.get("/health/ready")
def ready(request: Request) -> JSONResponse:
    ok, _ = registry_of(request).readiness()
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
def metadata(name: str, request: Request, version: str | None = None) -> dict:
    """Inputs and outputs of one graph: name, datatype, shape (-1 = any batch size)."""
    return dataplane.graph_metadata(registry_of(request), name, version)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
def model_ready(name: str, request: Request, version: str | None = None) -> dict:
    dataplane.resolve(registry_of(request), name, version)
    return {"name": name, "ready": True}


def flag(parameters: dict, name: str, default: bool = False) -> bool:
    value = parameters.get(name, default)
    if type(value) is not bool:
        raise InvalidInputError(f"parameter {name} must be true or false")
    return value


def input_tensors(parsed: InferRequest, binary: memoryview) -> list[InputTensor]:
    """Each tensor with its JSON data, or its slice of the binary tail (binary_data_size)."""
    tensors, offset = [], 0
    for tensor in parsed.inputs:
        contents = tensor.data
        size = tensor.parameters.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise InvalidInputError(f"input {tensor.name}: binary_data_size runs past the end of the body")
            contents, offset = binary[offset : offset + size], offset + size
        tensors.append(InputTensor(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape, contents=contents))
    return tensors


def infer_response(parsed: InferRequest, answer: InferenceResponse) -> Response:
    """JSON, or JSON and a binary tail for the outputs asked for binary (or all, with binary_data_output)."""
    wanted = {o.name: o.parameters for o in parsed.outputs or ()}
    binary_default = flag(parsed.parameters, "binary_data_output")
    tensors, blobs = [], []
    for name, array in answer.outputs.items():
        tensor = {"name": name, "datatype": dataplane.DATATYPES[str(array.dtype)], "shape": list(array.shape)}
        if flag(wanted.get(name, {}), "binary_data", binary_default):
            blob = np.ascontiguousarray(array).tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    body = {"model_name": answer.model_name, "model_version": answer.model_version, "outputs": tensors}
    if answer.id is not None:
        body["id"] = answer.id
    if not blobs:
        return json_response(body)
    header = json_bytes(body)
    headers = {"Inference-Header-Content-Length": str(len(header))}
    return Response(header + b"".join(blobs), media_type="application/octet-stream", headers=headers)


@router.post("/models/{name}/infer", openapi_extra=json_body_schema(InferRequest))
@router.post("/models/{name}/versions/{version}/infer", openapi_extra=json_body_schema(InferRequest))
async def infer(name: str, request: Request, version: str | None = None) -> Response:
    """Run one graph on JSON (or binary) tensors."""
    registry = registry_of(request)
    dataplane.resolve(registry, name, version)  # an unknown graph is a 404 before its body is read
    raw = await request.body()
    header_length = request.headers.get(BINARY_HEADER, "")
    split = int(header_length) if re.fullmatch("[0-9]{1,18}", header_length) else len(raw)
    if split > len(raw):
        raise InvalidInputError(f"{BINARY_HEADER} is larger than the body")
    parsed: InferRequest = parse_json(InferRequest, raw[:split])
    asked = InferenceRequest(
        model_name=name,
        model_version=version,
        inputs=input_tensors(parsed, memoryview(raw)[split:]),
        outputs=[o.name for o in parsed.outputs] if parsed.outputs else None,
        id=parsed.id,
    )
    return infer_response(parsed, await dataplane.infer(registry, asked, settings_of(request)))
