"""The Open Inference Protocol's data plane (KServe v2 / Triton), whatever carries it, as MLServer's dataplane.py:
the HTTP front (routes/v2.py) and the gRPC server (grpc_server.py) turn their messages into an InferenceRequest
and the InferenceResponse back into theirs; everything between happens here, once: finding the graph, checking
the inputs, running them in the same batches as the v1 routes' requests, choosing the outputs. A graph is named
`<model id>.<graph>`, e.g. `mnist-vqvae.encoder`.

A request is validated whole before it may join a batch (batching.batch_rows says why): its inputs are exactly the
graph's, each of the graph's dtype and shape, all with one batch size, finite, codes and labels in range.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from contract.errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from contract.manifest import GraphSpec, TensorSpec, parse_version
from service import inference
from service.batching import Feeds, batch_rows
from service.config import Settings
from service.package import SIZE_FREE_GRAPHS, LoadedModel
from service.registry import Registry

DATATYPES = {"float32": "FP32", "int64": "INT64"}
NUMPY_TYPES = {"FP32": np.float32, "INT64": np.int64}
INT64_MAX = np.iinfo(np.int64).max
Contents = bytes | memoryview | Sequence | None  # raw little-endian bytes, or the values (nested or flat)


@dataclass(frozen=True, kw_only=True)
class InputTensor:
    name: str
    datatype: str
    shape: list[int]
    contents: Contents


@dataclass(frozen=True, kw_only=True)
class InferenceRequest:
    model_name: str  # <model id>.<graph>
    model_version: str | None  # digits, or None for the newest
    inputs: list[InputTensor]
    outputs: list[str] | None = None  # the outputs to return; None: every one
    id: str | None = None


@dataclass(frozen=True, kw_only=True)
class InferenceResponse:
    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]  # in the graph's order
    id: str | None = None


def resolve(registry: Registry, name: str, version: str | None) -> tuple[LoadedModel, str]:
    """The model and graph that `name` (and `version`, digits or empty for the newest) name."""
    model_id, _, graph = name.rpartition(".")
    number = parse_version(version) if version else None
    if version and number is None:
        raise NotFoundError("a version is a number of at most 18 digits")
    if not model_id:
        raise NotFoundError("no such graph: graphs are named <model>.<graph>, e.g. mnist-vqvae.encoder")
    model = registry.get(model_id, number)
    if graph not in model.manifest.graphs:
        raise NotFoundError(f"model {model.id!r} has no graph {graph[:64]!r}; it has {sorted(model.manifest.graphs)}")
    return model, graph


def tensor_metadata(spec: TensorSpec) -> dict:
    return {"name": spec.name, "datatype": DATATYPES[spec.dtype], "shape": spec.shape}


def graph_metadata(registry: Registry, name: str, version: str | None) -> dict:
    """Inputs and outputs of one graph: name, datatype, shape (-1 = any batch size)."""
    model, graph = resolve(registry, name, version)
    spec = model.manifest.graphs[graph]
    return {
        "name": name,
        "versions": [str(v) for v in sorted(registry.models[model.id])],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor_metadata(t) for t in spec.inputs],
        "outputs": [tensor_metadata(t) for t in spec.outputs],
    }


def value_array(values: Sequence, datatype: str, name: str) -> np.ndarray:
    """Numbers (JSON's, or gRPC's typed contents) -> an array of the datatype, refusing what a cast would silently
    change: an INT64 input takes integers only (1.5 is not truncated), a number out of the type's range is an error,
    booleans are not numbers."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(f"input {name}: data must be a flat or nested list of numbers") from None
    kinds = "iu" if datatype == "INT64" else "iuf"
    if array.size and array.dtype.kind not in kinds:  # bool, str, or object (mixed, or integers beyond 64 bits)
        wanted = "integers" if datatype == "INT64" else "numbers"
        raise InvalidInputError(f"input {name}: {datatype} data must be {wanted} within the type's range")
    if array.dtype.kind == "u" and array.size and array.max() > INT64_MAX:
        raise InvalidInputError(f"input {name}: INT64 data must lie within [-2^63, 2^63)")
    with np.errstate(over="ignore"):  # a float beyond float32's range becomes inf, which check_values refuses
        return array.astype(NUMPY_TYPES[datatype])


def raw_array(data: bytes | memoryview, datatype: str, name: str) -> np.ndarray:
    """Little-endian bytes (HTTP's binary extension, gRPC's raw contents) -> a flat array of the datatype."""
    itemsize = np.dtype(NUMPY_TYPES[datatype]).itemsize
    if len(data) % itemsize:
        raise InvalidInputError(f"input {name}: {len(data)} bytes are not a whole number of {datatype}")
    return np.frombuffer(data, dtype=NUMPY_TYPES[datatype])


def shaped(array: np.ndarray, shape: list[int], spec: TensorSpec) -> np.ndarray:
    """The flat (or nested) values in `shape`, which must be the graph's (-1: any)."""
    if any(d < 0 for d in shape):
        raise InvalidInputError(f"input {spec.name}: shape {shape} has a negative dimension")
    if array.size != math.prod(shape):
        raise InvalidInputError(f"input {spec.name}: {array.size} values do not fill shape {list(shape)}")
    array = array.reshape(shape)
    expected = spec.shape
    if array.ndim != len(expected) or any(e not in (-1, g) for e, g in zip(expected, array.shape, strict=True)):
        raise InvalidInputError(f"input {spec.name} takes shape {expected} (-1: any); got {list(array.shape)}")
    return array


def input_array(tensor: InputTensor, spec: TensorSpec) -> np.ndarray:
    if tensor.datatype != DATATYPES[spec.dtype]:
        raise InvalidInputError(f"input {spec.name} takes {DATATYPES[spec.dtype]}, got {tensor.datatype}")
    if tensor.contents is None:
        raise InvalidInputError(f"input {spec.name} carries no data")
    if isinstance(tensor.contents, bytes | memoryview):
        array = raw_array(tensor.contents, tensor.datatype, spec.name)
    else:
        array = value_array(tensor.contents, tensor.datatype, spec.name)
    return shaped(array, tensor.shape, spec)


def gather_feeds(spec: GraphSpec, inputs: list[InputTensor]) -> Feeds:
    """The graph's feeds: exactly its inputs, each once, each read by its own spec."""
    specs = {t.name: t for t in spec.inputs}
    feeds: Feeds = {}
    for tensor in inputs:
        if tensor.name not in specs:  # before reading it: an unknown name has no spec to read it by
            raise InvalidInputError(f"unknown input {tensor.name!r}; the graph takes {sorted(specs)}")
        if tensor.name in feeds:
            raise InvalidInputError(f"input {tensor.name!r} is given twice")
        feeds[tensor.name] = input_array(tensor, specs[tensor.name])
    if missing := set(specs) - set(feeds):
        raise InvalidInputError(f"missing inputs {sorted(missing)}")
    return feeds


def chosen_outputs(spec: GraphSpec, wanted: list[str] | None) -> list[str]:
    names = [t.name for t in spec.outputs]
    if wanted is None:
        return names
    if unknown := set(wanted) - set(names):
        raise InvalidInputError(f"unknown outputs {sorted(unknown)}; the graph has {names}")
    return [name for name in names if name in wanted]


def check_sizes(model: LoadedModel, graph: str, feeds: Feeds, settings: Settings) -> None:
    """A size-free encoder's images: sides that are multiples of the stride; its decoder's grids: at least one
    code; both: within MAX_REQUEST_PIXELS together (a code counts stride^2)."""
    if model.manifest.size_free is None or graph not in SIZE_FREE_GRAPHS:
        return
    (name, array), stride = next(iter(feeds.items())), model.manifest.size_free.stride
    height, width = array.shape[-2:]
    step = stride if graph == "encoder" else 1
    if min(height, width) < 1 or height % step or width % step:
        raise InvalidInputError(
            f"input {name}: height and width must be positive multiples of {step}; got {height}x{width}"
        )
    if len(array) * height * width * (stride // step) ** 2 > settings.MAX_REQUEST_PIXELS:
        raise PayloadTooLargeError(f"input {name}: more than MAX_REQUEST_PIXELS ({settings.MAX_REQUEST_PIXELS}) pixels")


def check_values(model: LoadedModel, spec: GraphSpec, feeds: Feeds, max_rows: int) -> None:
    """What the graphs cannot check themselves: one batch size for every input, finite floats, codes and labels
    in range. All of it before the request may join a batch (batching.batch_rows says why)."""
    rows = batch_rows(feeds, {t.name: t.shape.index(-1) for t in spec.inputs})
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
        "labels": inference.label_classes(model) + (model.manifest.no_label is not None),
    }
    for name, bound in bounds.items():
        if name in feeds and bound and (feeds[name].min() < 0 or feeds[name].max() >= bound):
            raise InvalidInputError(f"input {name} must lie in [0, {bound})")


ORT_REFUSALS = (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ort.capi.onnxruntime_pybind11_state.Fail)


async def infer(registry: Registry, request: InferenceRequest, settings: Settings) -> InferenceResponse:
    """Checks the whole request, then awaits its rows in the event loop (merged with concurrent requests, from
    HTTP and gRPC alike, as the hot v1 routes do: no worker-thread hop); a size-free graph's large input in tiles,
    which give what one pass would."""
    model, graph = resolve(registry, request.model_name, request.model_version)
    spec = model.manifest.graphs[graph]
    feeds = gather_feeds(spec, request.inputs)
    check_values(model, spec, feeds, settings.MAX_IMAGES)
    check_sizes(model, graph, feeds, settings)
    wanted = chosen_outputs(spec, request.outputs)
    try:
        outputs = dict(zip([t.name for t in spec.outputs], await model.run_async(graph, feeds), strict=True))
    except ORT_REFUSALS as error:
        raise InvalidInputError(f"onnxruntime rejected the inputs: {error}") from None
    return InferenceResponse(
        model_name=request.model_name,
        model_version=str(model.version),
        outputs={name: outputs[name] for name in wanted},
        id=request.id,
    )
