"""FastAPI dependencies, named as Annotated aliases (as in the full-stack FastAPI template)."""

from typing import Annotated

from fastapi import Depends, Query, Request

from service.config import Settings
from service.registry import LoadedModel, Registry
from service.schemas import VERSION_HELP


# Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def lookup_model(request: Request, version: int | None) -> LoadedModel:
    """The model named by the route's {model_id}, in the given version or the newest."""
    # A dictionary lookup: the id never becomes a path, so it cannot escape the models folder.
    # The registry is read here rather than injected: a nested dependency costs every request.
    return request.app.state.registry.get(request.path_params["model_id"], version)


async def get_model(
    model_id: str,  # declared for validation and the OpenAPI schema; lookup_model reads it from the route
    request: Request,
    version: Annotated[int | None, Query(ge=1, description=VERSION_HELP)] = None,
) -> LoadedModel:
    return lookup_model(request, version)


ModelDep = Annotated[LoadedModel, Depends(get_model)]
