"""Request dependencies: the process's services (built once by the app's lifespan) and the auth checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..wiring import Services
from . import auth


def get_services(request: Request) -> Services:
    return request.app.state.services


def _read_access(request: Request, services: Annotated[Services, Depends(get_services)]) -> None:
    auth.require_read(services.settings, request)


def _write_access(request: Request, services: Annotated[Services, Depends(get_services)]) -> None:
    auth.require_write(services.settings, request)


ServicesDep = Annotated[Services, Depends(get_services)]
ReadAccess = Depends(_read_access)
WriteAccess = Depends(_write_access)
