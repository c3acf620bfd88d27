"""Triton's model repository extension over HTTP: the index, and loading and unloading models by name without a
restart (MODEL_CONTROL=explicit; registry.py). Like every route but liveness, these need the API key when one is
set; they change what the service serves, so keep them off the internet."""

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from service.deps import registry_of

router = APIRouter(prefix="/v2/repository", tags=["kserve-v2"])


@router.post("/index")
def index(request: Request) -> list[dict]:
    """Every version on record: name, version, state (READY or UNAVAILABLE) and the reason."""
    return registry_of(request).index()


@router.post("/models/{name}/load")
async def load(name: str, request: Request) -> dict:
    """(Re)reads the model's folder: new versions are verified and warmed up before they serve. Answers the
    versions now serving and those refused, with the reasons; 400 when none serves."""
    return await run_in_threadpool(registry_of(request).load_model, name)


@router.post("/models/{name}/unload")
async def unload(name: str, request: Request) -> dict:
    """New requests for the model get 404; the ones already running finish."""
    await run_in_threadpool(registry_of(request).unload_model, name)
    return {}
