"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import registry_of

router = APIRouter(tags=["health"])


@router.get("/health/live")
def live() -> dict:
    """The process is up."""
    return {"status": "live"}


@router.get("/health/ready")
def ready(request: Request) -> JSONResponse:
    """Every model loaded and warmed up (and on a GPU when REQUIRE_GPU is set)."""
    ok, body = registry_of(request).readiness()
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
