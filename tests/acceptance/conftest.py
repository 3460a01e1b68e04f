"""Fixtures of the API acceptance tests."""

from __future__ import annotations

from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from conductor.config import Settings
from conductor.service import JobService
from tests.helpers import node


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The API over a real service (both backends) with one 32-CPU, 64 GiB node recorded; no scheduler."""
    service = JobService.from_settings(settings)
    service.repository.replace_nodes([node("n1", 32, 65536, 0, {}, ray_node_id="ray-n1")])
    with TestClient(create_app(settings, service=service)) as test_client:
        test_client.service = service  # type: ignore[attr-defined]
        yield test_client
    service.close()
