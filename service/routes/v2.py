"""The Open Inference Protocol (KServe v2) over HTTP, so that standard clients (tritonclient, KServe) work
unchanged: a thin front over oip.py, which the gRPC front shares. The binary tensor extension is supported, as
tritonclient uses it by default."""

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from contract.errors import InvalidInputError
from service import oip
from service.deps import RegistryDep, SettingsDep
from service.package import LoadedModel
from service.routes.health import readiness
from service.routes.payloads import json_body_schema, json_bytes, json_response, parse_json
from service.schemas import InferRequest, InferTensor

router = APIRouter(prefix="/v2", tags=["kserve-v2"])
BINARY_HEADER = "inference-header-content-length"


@router.get("/health/live")
def live() -> dict:
    return {"live": True}


@router.get("/health/ready")
def ready(registry: RegistryDep, settings: SettingsDep) -> JSONResponse:
    ok, _ = readiness(registry, settings)
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
def metadata(name: str, registry: RegistryDep, version: str | None = None) -> dict:
    """Inputs and outputs of one graph: name, datatype, shape (-1 = any batch size)."""
    return oip.graph_metadata(registry, name, version)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
def model_ready(name: str, registry: RegistryDep, version: str | None = None) -> dict:
    oip.resolve(registry, name, version)
    return {"name": name, "ready": True}


def input_array(tensor: InferTensor, spec, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    """The tensor as an array of the graph's dtype and shape, from its JSON data or the binary tail; returns it and
    the new binary offset."""
    oip.check_datatype(spec, tensor.datatype)
    size = tensor.parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise InvalidInputError(f"input {spec.name}: binary_data_size runs past the end of the body")
        array = oip.raw_array(binary[offset : offset + size], tensor.datatype, spec.name)
        offset += size
    elif tensor.data is not None:
        array = oip.json_array(tensor.data, tensor.datatype, spec.name)
    else:
        raise InvalidInputError(f"input {spec.name} carries no data")
    return oip.shaped(array, tensor.shape, spec), offset


def flag(parameters: dict, name: str, default: bool = False) -> bool:
    value = parameters.get(name, default)
    if type(value) is not bool:
        raise InvalidInputError(f"parameter {name} must be true or false")
    return value


def infer_response(
    name: str, model: LoadedModel, request: InferRequest, names: list[str], outputs: list[np.ndarray]
) -> Response:
    wanted = {o.name: o.parameters for o in request.outputs} if request.outputs else {n: {} for n in names}
    if unknown := set(wanted) - set(names):
        raise InvalidInputError(f"unknown outputs {sorted(unknown)}; the graph has {names}")
    binary_default = flag(request.parameters, "binary_data_output")
    tensors, blobs = [], []
    for output_name, array in zip(names, outputs, strict=True):
        if output_name not in wanted:
            continue
        tensor = {"name": output_name, "datatype": oip.DATATYPES[str(array.dtype)], "shape": list(array.shape)}
        if flag(wanted[output_name], "binary_data", binary_default):
            blob = np.ascontiguousarray(array).tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    body = {"model_name": name, "model_version": str(model.version), "outputs": tensors}
    if request.id is not None:
        body["id"] = request.id
    if not blobs:
        return json_response(body)
    header = json_bytes(body)
    headers = {"Inference-Header-Content-Length": str(len(header))}
    return Response(header + b"".join(blobs), media_type="application/octet-stream", headers=headers)


@router.post("/models/{name}/infer", openapi_extra=json_body_schema(InferRequest))
@router.post("/models/{name}/versions/{version}/infer", openapi_extra=json_body_schema(InferRequest))
async def infer(
    name: str, request: Request, registry: RegistryDep, settings: SettingsDep, version: str | None = None
) -> Response:
    """Run one graph on JSON (or binary) tensors."""
    model, graph = oip.resolve(registry, name, version)
    raw = await request.body()
    header_length = request.headers.get(BINARY_HEADER, "")
    split = int(header_length) if header_length.isascii() and header_length.isdigit() else len(raw)
    if split > len(raw):
        raise InvalidInputError(f"{BINARY_HEADER} is larger than the body")
    parsed: InferRequest = parse_json(InferRequest, raw[:split])
    specs = {t.name: t for t in model.manifest.graphs[graph].inputs}
    tensors, offset, binary = [], 0, memoryview(raw)[split:]
    for tensor in parsed.inputs:
        if tensor.name not in specs:  # before reading it: an unknown name has no spec to read it by
            raise InvalidInputError(f"unknown input {tensor.name!r}; the graph takes {sorted(specs)}")
        array, offset = input_array(tensor, specs[tensor.name], binary, offset)
        tensors.append((tensor.name, array))
    feeds = oip.gather_feeds(model, graph, tensors)
    outputs = await oip.infer(model, graph, feeds, settings.MAX_IMAGES)
    return infer_response(name, model, parsed, list(outputs), list(outputs.values()))
