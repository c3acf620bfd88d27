"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, KServe v2 / Triton), served by the same
process and registry as HTTP on GRPC_PORT: a thin front over oip.py, batched with the HTTP requests.

The service and message classes are those compiled from Triton's published protocol (`grpc_service.proto`) with
grpcio-tools, as the tritonclient package ships them, so that `tritonclient.grpc` works unchanged. Implemented:
ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata, ModelInfer, and the repository extension's
RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload; every other RPC answers UNIMPLEMENTED. Errors are
gRPC status codes with the same messages as over HTTP.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as rpc

from contract.errors import ServiceError
from service import oip
from service.auth import check_api_key
from service.config import Settings
from service.registry import Registry
from service.routes.health import readiness

STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
}
CONTENTS = {"FP32": "fp32_contents", "INT64": "int64_contents"}  # InferTensorContents' field per datatype


class InferenceService(rpc.GRPCInferenceServiceServicer):
    def __init__(self, registry: Registry, settings: Settings):
        self.registry, self.settings = registry, settings

    async def call(self, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[Any]], open_: bool = False):
        """Runs `work` after the API key check (not for liveness); a ServiceError becomes its gRPC status."""
        try:
            if not open_:
                self.authorize(context)
            return await work()
        except ServiceError as error:
            await context.abort(STATUS.get(error.status, grpc.StatusCode.INTERNAL), error.message)

    def authorize(self, context: grpc.aio.ServicerContext) -> None:
        metadata = context.invocation_metadata() or ()
        check_api_key(self.settings.API_KEY, {key.lower(): value for key, value in metadata if isinstance(value, str)})

    async def ServerLive(self, request: pb.ServerLiveRequest, context) -> pb.ServerLiveResponse:  # noqa: N802
        return await self.call(context, self._live, open_=True)

    async def _live(self) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context) -> pb.ServerReadyResponse:  # noqa: N802
        async def ready() -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=readiness(self.registry, self.settings)[0])

        return await self.call(context, ready)

    async def ServerMetadata(self, request, context) -> pb.ServerMetadataResponse:  # noqa: N802
        async def metadata() -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(name="latentgen", version="0.1.0", extensions=["model_repository"])

        return await self.call(context, metadata)

    async def ModelReady(self, request: pb.ModelReadyRequest, context) -> pb.ModelReadyResponse:  # noqa: N802
        async def ready() -> pb.ModelReadyResponse:
            try:
                oip.resolve(self.registry, request.name, request.version or None)
            except ServiceError:
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        return await self.call(context, ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context) -> pb.ModelMetadataResponse:  # noqa: N802
        async def metadata() -> pb.ModelMetadataResponse:
            found = oip.graph_metadata(self.registry, request.name, request.version or None)
            tensors = {kind: [pb.ModelMetadataResponse.TensorMetadata(**t) for t in found[kind]] for kind in
                       ("inputs", "outputs")}  # fmt: skip
            return pb.ModelMetadataResponse(
                name=found["name"], versions=found["versions"], platform=found["platform"], **tensors
            )

        return await self.call(context, metadata)

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:  # noqa: N802
        return await self.call(context, lambda: self._infer(request))

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        model, graph = oip.resolve(self.registry, request.model_name, request.model_version or None)
        specs = {t.name: t for t in model.manifest.graphs[graph].inputs}
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise oip.InvalidInputError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
        tensors = []
        for index, tensor in enumerate(request.inputs):
            if tensor.name not in specs:
                raise oip.InvalidInputError(f"unknown input {tensor.name!r}; the graph takes {sorted(specs)}")
            spec = specs[tensor.name]
            oip.check_datatype(spec, tensor.datatype)
            if raw:
                array = oip.raw_array(raw[index], tensor.datatype, spec.name)
            else:
                values = getattr(tensor.contents, CONTENTS[tensor.datatype])
                array = np.asarray(values, dtype=oip.NUMPY_TYPES[tensor.datatype])
            tensors.append((tensor.name, oip.shaped(array, list(tensor.shape), spec)))
        feeds = oip.gather_feeds(model, graph, tensors)
        outputs = await oip.infer(model, graph, feeds, self.settings.MAX_IMAGES)
        wanted = [o.name for o in request.outputs] or list(outputs)
        if unknown := set(wanted) - set(outputs):
            raise oip.InvalidInputError(f"unknown outputs {sorted(unknown)}; the graph has {list(outputs)}")
        response = pb.ModelInferResponse(model_name=request.model_name, model_version=str(model.version), id=request.id)
        for name in wanted:
            array = np.ascontiguousarray(outputs[name])
            response.outputs.add(name=name, datatype=oip.DATATYPES[str(array.dtype)], shape=array.shape)
            response.raw_output_contents.append(array.tobytes())
        return response

    async def RepositoryIndex(self, request, context) -> pb.RepositoryIndexResponse:  # noqa: N802
        async def index() -> pb.RepositoryIndexResponse:
            entries = [pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in self.registry.index()]
            return pb.RepositoryIndexResponse(models=entries)

        return await self.call(context, index)

    async def RepositoryModelLoad(self, request, context) -> pb.RepositoryModelLoadResponse:  # noqa: N802
        async def load() -> pb.RepositoryModelLoadResponse:
            await asyncio.to_thread(self.registry.load_model, request.model_name)
            return pb.RepositoryModelLoadResponse()

        return await self.call(context, load)

    async def RepositoryModelUnload(self, request, context) -> pb.RepositoryModelUnloadResponse:  # noqa: N802
        async def unload() -> pb.RepositoryModelUnloadResponse:
            await asyncio.to_thread(self.registry.unload_model, request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return await self.call(context, unload)


async def start_grpc(registry: Registry, settings: Settings) -> grpc.aio.Server | None:
    """The gRPC server on GRPC_HOST:GRPC_PORT (0: none); messages as large as HTTP bodies may be."""
    if not settings.GRPC_PORT:
        return None
    limits = [("grpc.max_receive_message_length", settings.MAX_BODY_BYTES)]
    server = grpc.aio.server(options=[*limits, ("grpc.max_send_message_length", 64 * 1024 * 1024)])
    rpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(registry, settings), server)
    address = f"{settings.GRPC_HOST}:{settings.GRPC_PORT}"
    if not server.add_insecure_port(address):
        raise RuntimeError(f"cannot listen for gRPC on {address}")
    await server.start()
    return server
