"""Annotated dependencies for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from conductor.config import Settings
from conductor.service import JobService


def _service(request: Request) -> JobService:
    return request.app.state.service


def _settings(request: Request) -> Settings:
    return request.app.state.settings


ServiceDep = Annotated[JobService, Depends(_service)]
SettingsDep = Annotated[Settings, Depends(_settings)]
