"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, KServe v2 / Triton), served by the same
process and registry as HTTP on GRPC_PORT: protobuf messages in and out of dataplane.py's request and response,
batched with the HTTP requests.

The service and message classes are those compiled from Triton's published protocol (`grpc_service.proto`) with
grpcio-tools, as the tritonclient package ships them, so that `tritonclient.grpc` works unchanged. Implemented:
ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata, ModelInfer, and the repository extension's
RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload; every other RPC answers UNIMPLEMENTED. Errors are
gRPC status codes with the same messages as over HTTP.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from starlette.concurrency import run_in_threadpool
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as rpc

from contract.errors import InvalidInputError, ServiceError
from service import dataplane
from service.auth import check_api_key
from service.config import Settings, service_version
from service.dataplane import InferenceRequest, InputTensor
from service.registry import Registry

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
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]


def answered(open_: bool = False) -> Callable[[Handler], Handler]:
    """An RPC behind the API key (unless open_: liveness), whose ServiceError becomes its gRPC status."""

    def decorate(method: Handler) -> Handler:
        @functools.wraps(method)
        async def handler(self: "InferenceService", request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                if not open_:
                    metadata = context.invocation_metadata() or ()
                    check_api_key(self.settings.API_KEY, {k.lower(): v for k, v in metadata if isinstance(v, str)})
                return await method(self, request, context)
            except ServiceError as error:
                await context.abort(STATUS.get(error.status, grpc.StatusCode.INTERNAL), error.message)

        return handler

    return decorate


def input_tensors(request: pb.ModelInferRequest) -> list[InputTensor]:
    """Each tensor with its raw contents, or its typed contents (the field of its datatype)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInputError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    return [
        InputTensor(
            name=tensor.name,
            datatype=tensor.datatype,
            shape=list(tensor.shape),
            contents=raw[index] if raw else getattr(tensor.contents, CONTENTS.get(tensor.datatype, ""), []),
        )
        for index, tensor in enumerate(request.inputs)
    ]


class InferenceService(rpc.GRPCInferenceServiceServicer):
    def __init__(self, registry: Registry, settings: Settings):
        self.registry, self.settings = registry, settings

    @answered(open_=True)
    async def ServerLive(self, request, context) -> pb.ServerLiveResponse:  # noqa: N802
        return pb.ServerLiveResponse(live=True)

    @answered()
    async def ServerReady(self, request, context) -> pb.ServerReadyResponse:  # noqa: N802
        return pb.ServerReadyResponse(ready=self.registry.readiness()[0])

    @answered()
    async def ServerMetadata(self, request, context) -> pb.ServerMetadataResponse:  # noqa: N802
        return pb.ServerMetadataResponse(name="latentgen", version=service_version(), extensions=["model_repository"])

    @answered()
    async def ModelReady(self, request: pb.ModelReadyRequest, context) -> pb.ModelReadyResponse:  # noqa: N802
        try:
            dataplane.resolve(self.registry, request.name, request.version or None)
        except ServiceError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    @answered()
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context) -> pb.ModelMetadataResponse:  # noqa: N802
        found = dataplane.graph_metadata(self.registry, request.name, request.version or None)
        tensors = {
            kind: [pb.ModelMetadataResponse.TensorMetadata(**t) for t in found[kind]] for kind in ("inputs", "outputs")
        }
        return pb.ModelMetadataResponse(
            name=found["name"], versions=found["versions"], platform=found["platform"], **tensors
        )

    @answered()
    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:  # noqa: N802
        asked = InferenceRequest(
            model_name=request.model_name,
            model_version=request.model_version or None,
            inputs=input_tensors(request),
            outputs=[o.name for o in request.outputs] or None,
            id=request.id,
        )
        answer = await dataplane.infer(self.registry, asked, self.settings)
        response = pb.ModelInferResponse(model_name=answer.model_name, model_version=answer.model_version, id=answer.id)
        for name, array in answer.outputs.items():
            array = np.ascontiguousarray(array)
            response.outputs.add(name=name, datatype=dataplane.DATATYPES[str(array.dtype)], shape=array.shape)
            response.raw_output_contents.append(array.tobytes())
        return response

    @answered()
    async def RepositoryIndex(self, request, context) -> pb.RepositoryIndexResponse:  # noqa: N802
        entries = [pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in self.registry.index()]
        return pb.RepositoryIndexResponse(models=entries)

    @answered()
    async def RepositoryModelLoad(self, request, context) -> pb.RepositoryModelLoadResponse:  # noqa: N802
        await run_in_threadpool(self.registry.load_model, request.model_name)
        return pb.RepositoryModelLoadResponse()

    @answered()
    async def RepositoryModelUnload(self, request, context) -> pb.RepositoryModelUnloadResponse:  # noqa: N802
        await run_in_threadpool(self.registry.unload_model, request.model_name)
        return pb.RepositoryModelUnloadResponse()


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
