"""The FastAPI application: settings in, models loaded in the lifespan, routers included."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from contract.errors import ServiceError
from service.config import Settings, service_version
from service.grpc_server import start_grpc
from service.middleware import RequestContext, error_payload
from service.registry import Registry
from service.routes import health, models, repository, v2
from service.routes.payloads import validation_message

log = logging.getLogger("service")
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
STATIC = Path(__file__).parent / "static"  # the demo page: plain HTML and JavaScript, no build step


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_payload(request.url.path, code, message), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as {"error": {"code", "message"}}."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        return error_response(request, error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(request, 422, "invalid_input", validation_message(error))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(
            request, error.status_code, HTTP_CODES.get(error.status_code, "http_error"), str(error.detail)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = "internal error; the request id in X-Request-ID finds it in the logs"
        return error_response(request, 500, "internal_error", message)


async def poll(registry: Registry, seconds: float) -> None:
    """MODEL_CONTROL=poll: rescan MODELS_DIR every `seconds` (registry.py says what changes)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(registry.sync)
        except Exception:  # a folder that vanished mid-scan, say: the next poll sees the rest
            log.exception("rescanning the models folder failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sessions are created here, in the serving process, never at import or before a fork.
        registry = Registry(settings)
        await run_in_threadpool(registry.load)
        app.state.registry = registry
        grpc_server = await start_grpc(registry, settings)
        poller = (
            asyncio.create_task(poll(registry, settings.POLL_SECONDS)) if settings.MODEL_CONTROL == "poll" else None
        )
        yield
        if poller:
            poller.cancel()
        if grpc_server:
            await grpc_server.stop(grace=30)  # in-flight calls finish, as uvicorn's HTTP requests do
        registry.close()

    app = FastAPI(
        title="latentgen",
        description="Encode, decode, sample and interpolate with VQ-VAE and VAE models on ONNX Runtime.",
        version=service_version(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # FastAPI tries the routes in order, at a cost per route tried: the busiest routers come first.
    app.include_router(models.router)
    app.include_router(v2.router)
    app.include_router(repository.router)
    app.include_router(health.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def demo_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.add_middleware(RequestContext, settings=settings)
    return app
