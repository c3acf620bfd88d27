"""FastAPI dependencies, named as Annotated aliases (as in the full-stack FastAPI template)."""

from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.registry import Registry


# Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
