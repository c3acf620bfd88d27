"""The Open Inference Protocol (KServe v2) subset over the raw graphs, so that standard clients
(tritonclient, KServe) work unchanged. A graph is named `<model id>.<graph>`, e.g.
`mnist-vqvae.encoder`. The binary tensor extension is supported, as tritonclient uses it by default."""

import math

import numpy as np
import onnxruntime as ort
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from contract.errors import InvalidInputError, NotFoundError
from contract.manifest import GraphSpec, TensorSpec
from service import inference
from service.batching import batch_rows
from service.deps import RegistryDep, SettingsDep
from service.registry import LoadedModel, Registry
from service.routes.health import readiness
from service.routes.payloads import json_body_schema, json_bytes, json_response, parse_json
from service.schemas import InferRequest, InferTensor

router = APIRouter(prefix="/v2", tags=["kserve-v2"])
DATATYPES = {"float32": "FP32", "int64": "INT64"}
NUMPY_TYPES = {"FP32": np.float32, "INT64": np.int64}
BINARY_HEADER = "inference-header-content-length"


def resolve(registry: Registry, name: str, version: str | None) -> tuple[LoadedModel, str]:
    model_id, _, graph = name.rpartition(".")
    if version is not None and not (version.isascii() and version.isdigit()):
        raise NotFoundError(f"version {version!r} is not a number")
    model = registry.get(model_id, int(version) if version else None) if model_id else None
    if model is None or graph not in model.manifest.graphs:
        raise NotFoundError(f"no graph {name!r}; graphs are named <model>.<graph>, e.g. mnist-vqvae.encoder")
    return model, graph


def tensor_metadata(spec: TensorSpec) -> dict:
    return {"name": spec.name, "datatype": DATATYPES[spec.dtype], "shape": spec.shape}


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
    model, graph = resolve(registry, name, version)
    spec: GraphSpec = model.manifest.graphs[graph]
    return {
        "name": name,
        "versions": [str(v) for v in sorted(registry.models[model.id])],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor_metadata(t) for t in spec.inputs],
        "outputs": [tensor_metadata(t) for t in spec.outputs],
    }


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
def model_ready(name: str, registry: RegistryDep, version: str | None = None) -> dict:
    resolve(registry, name, version)
    return {"name": name, "ready": True}


INT64_MAX = np.iinfo(np.int64).max


def json_array(data: list, datatype: str, name: str) -> np.ndarray:
    """JSON numbers -> an array of the datatype, refusing what a cast would silently change: an INT64 input takes
    integers only (1.5 is not truncated), a number out of the type's range is an error, booleans are not numbers."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(f"input {name}: data must be a flat or nested list of numbers") from None
    kinds = "iu" if datatype == "INT64" else "iuf"
    if array.dtype.kind not in kinds:  # bool, str, or object (mixed, or integers beyond 64 bits)
        wanted = "integers" if datatype == "INT64" else "numbers"
        raise InvalidInputError(f"input {name}: {datatype} data must be JSON {wanted} within the type's range")
    if array.dtype.kind == "u" and array.size and array.max() > INT64_MAX:
        raise InvalidInputError(f"input {name}: INT64 data must lie within [-2^63, 2^63)")
    with np.errstate(over="ignore"):  # a float beyond float32's range becomes inf, which check_values refuses
        return array.astype(NUMPY_TYPES[datatype])


def input_array(tensor: InferTensor, spec: TensorSpec, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    """The tensor as an array of the graph's dtype and shape; returns it and the new binary offset."""
    if tensor.datatype != DATATYPES[spec.dtype]:
        raise InvalidInputError(f"input {spec.name} takes {DATATYPES[spec.dtype]}, got {tensor.datatype}")
    dtype = NUMPY_TYPES[tensor.datatype]
    size = tensor.parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise InvalidInputError(f"input {spec.name}: binary_data_size runs past the end of the body")
        if size % np.dtype(dtype).itemsize:
            raise InvalidInputError(f"input {spec.name}: binary_data_size is not a whole number of {tensor.datatype}")
        array = np.frombuffer(binary[offset : offset + size], dtype=dtype)
        offset += size
    elif tensor.data is not None:
        array = json_array(tensor.data, tensor.datatype, spec.name)
    else:
        raise InvalidInputError(f"input {spec.name} carries no data")
    if array.size != math.prod(tensor.shape):
        raise InvalidInputError(f"input {spec.name}: {array.size} values do not fill shape {tensor.shape}")
    array = array.reshape(tensor.shape)
    expected = spec.shape
    if array.ndim != len(expected) or any(e not in (-1, g) for e, g in zip(expected, array.shape, strict=True)):
        raise InvalidInputError(f"input {spec.name} takes shape {expected} (-1: any); got {list(array.shape)}")
    return array, offset


def check_values(model: LoadedModel, specs: dict[str, TensorSpec], feeds: dict[str, np.ndarray], max_rows: int) -> None:
    """What the graphs cannot check themselves: one batch size for every input, finite floats, codes and labels
    in range. All of it before the request may join a batch (batching.batch_rows says why)."""
    rows = batch_rows(feeds, {name: spec.shape.index(-1) for name, spec in specs.items()})
    if rows == 0 or rows > max_rows:
        raise InvalidInputError(f"batch size must be 1..{max_rows}; got {rows}")
    for name, array in feeds.items():
        if array.dtype == np.float32 and not np.isfinite(array).all():
            raise InvalidInputError(f"input {name} holds NaN or Inf (or a number beyond float32's range)")
    codes = model.manifest.num_codes or 0
    bounds = {
        "codes": codes,
        "codes_above": codes + 1,  # the cached-sampling steps read the code K as "outside the grid"
        "codes_left": codes + 1,
        "labels": inference.label_classes(model) + (inference.no_label(model) is not None),
    }
    for name, bound in bounds.items():
        if name in feeds and bound and (feeds[name].min() < 0 or feeds[name].max() >= bound):
            raise InvalidInputError(f"input {name} must lie in [0, {bound})")


def run_graph(model: LoadedModel, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    try:
        return model.run(graph, feeds)
    except (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ort.capi.onnxruntime_pybind11_state.Fail) as error:
        raise InvalidInputError(f"onnxruntime rejected the inputs: {error}") from None


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
        tensor = {"name": output_name, "datatype": DATATYPES[str(array.dtype)], "shape": list(array.shape)}
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
    model, graph = resolve(registry, name, version)
    raw = await request.body()
    header_length = request.headers.get(BINARY_HEADER, "")
    split = int(header_length) if header_length.isascii() and header_length.isdigit() else len(raw)
    if split > len(raw):
        raise InvalidInputError(f"{BINARY_HEADER} is larger than the body")
    parsed: InferRequest = parse_json(InferRequest, raw[:split])
    specs = {t.name: t for t in model.manifest.graphs[graph].inputs}
    feeds, offset, binary = {}, 0, memoryview(raw)[split:]
    for tensor in parsed.inputs:
        if tensor.name not in specs:
            raise InvalidInputError(f"unknown input {tensor.name!r}; the graph takes {sorted(specs)}")
        if tensor.name in feeds:
            raise InvalidInputError(f"input {tensor.name!r} is given twice")
        feeds[tensor.name], offset = input_array(tensor, specs[tensor.name], binary, offset)
    if missing := set(specs) - set(feeds):
        raise InvalidInputError(f"missing inputs {sorted(missing)}")
    check_values(model, specs, feeds, settings.MAX_IMAGES)
    outputs = await run_in_threadpool(run_graph, model, graph, feeds)
    names = [t.name for t in model.manifest.graphs[graph].outputs]
    return infer_response(name, model, parsed, names, outputs)
