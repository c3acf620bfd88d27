"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import RegistryDep, SettingsDep

router = APIRouter(tags=["health"])


def readiness(registry: RegistryDep, settings: SettingsDep) -> tuple[bool, dict]:
    """Ready once every loadable model is loaded and warmed up, on a GPU if REQUIRE_GPU is set."""
    gpu_ok = registry.gpu_ok()
    ready = not settings.REQUIRE_GPU or (gpu_ok and bool(registry.models))
    body = {
        "status": "ready" if ready else "not_ready",
        "models": {m.id + "/" + str(m.version): m.provider for m in registry.all_models()},
        "unavailable": {f"{u.id}/{u.version}": u.reason for u in registry.unavailable},
    }
    if not ready:
        body["reason"] = "REQUIRE_GPU is set but a model runs on the CPU (or none is loaded)"
    return ready, body


@router.get("/health/live")
def live() -> dict:
    """The process is up."""
    return {"status": "live"}


@router.get("/health/ready")
def ready(registry: RegistryDep, settings: SettingsDep) -> JSONResponse:
    """Every model loaded and warmed up (and on a GPU when REQUIRE_GPU is set)."""
    ok, body = readiness(registry, settings)
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
