"""How a handler reaches the application's registry and settings: one idiom for every route, v1 and v2 alike.

Handlers take the Request and read the state through these two functions rather than through FastAPI's
dependencies (the full-stack template's `RegistryDep`): resolving two dependencies per request made the HTTP path
measurably dearer (docs/experiments/2026-12-07-route-idiom.md).
"""

from fastapi import Request

from service.config import Settings
from service.registry import Registry


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


def settings_of(request: Request) -> Settings:
    return request.app.state.settings
