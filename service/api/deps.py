"""Request dependencies: the process's services (built once by the app's lifespan), behind the auth check a route
needs. A route takes one of them as its ``services`` parameter: ``ReadServices`` (a key or a valid URL
signature), ``WriteServices`` (a key), or ``ServicesDep`` (public: health, readiness, the page); the hot reads
call :func:`readable` themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..wiring import Services
from . import auth


# One flat dependency per route, and `async def` although none awaits: FastAPI runs a plain `def` dependency in a
# worker thread and resolves each nested one separately, costs that add up to much of a cached read's time.
async def _services(request: Request) -> Services:
    return request.app.state.services


def readable(request: Request) -> Services:
    """The services, once the request may read (a key, or a valid URL signature). Called directly by the hot
    read routes (thumbnail, reconstruction): dependency injection costs them more than their own work."""
    services: Services = request.app.state.services
    auth.require_read(services.settings, request)
    return services


async def _readable(request: Request) -> Services:
    return readable(request)


async def _writable(request: Request) -> Services:
    services: Services = request.app.state.services
    auth.require_write(services.settings, request)
    return services


ServicesDep = Annotated[Services, Depends(_services)]
ReadServices = Annotated[Services, Depends(_readable)]
WriteServices = Annotated[Services, Depends(_writable)]
