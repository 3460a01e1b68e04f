"""``conductor status`` (and GET /api/status) against a real API served beside a real scheduler."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from conductor.config import Settings
from tests.helpers import free_port, spec, wait_for

pytestmark = pytest.mark.ray
CONDUCTOR = str(Path(sys.executable).with_name("conductor"))


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """create_app(settings, check_ray=True) served by uvicorn on a free port in a thread of this process."""
    import uvicorn

    from api.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings, check_ray=True), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        wait_for(lambda: _answers(url), 30, interval_s=0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _answers(url: str) -> bool:
    """Whether the API answers at all (its health check is a 503 while no scheduler answers)."""
    import httpx

    try:
        return httpx.get(f"{url}/api/status", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _status(url: str) -> dict:
    import httpx

    return httpx.get(f"{url}/api/status", timeout=5).json()


def conductor_status(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env["CONDUCTOR_URL"] = url
    return subprocess.run([CONDUCTOR, "status", *args], env=env, capture_output=True, text=True, timeout=60)


def test_status_shows_the_scheduler_lease_queue_nodes_and_health(settings, scheduler_factory, service,
                                                                 tmp_path: Path) -> None:
    scheduler_factory(settings)
    held = service.submit(spec("true\n", working_dir=str(tmp_path), hold="user")).id
    with serving(settings) as url:
        wait_for(lambda: _status(url)["queue"]["pending_by_reason"].get("JobHeldUser") == 1, 15)
        result = conductor_status(url, "--json")
        assert result.returncode == 0, result.stderr
        found = json.loads(result.stdout)
        text = conductor_status(url)
    assert found["version"] == importlib.metadata.version("conductor")
    scheduler = found["scheduler"]
    assert scheduler["answers"] is True and scheduler["uptime_s"] > 0
    assert scheduler["passes_total"] >= 1 and scheduler["passes_per_minute"] >= 1
    assert scheduler["last_pass_duration_s"] is not None and scheduler["last_pass_duration_s"] < 5
    assert found["lease"]["held"] is True and found["lease"]["holder"].startswith("conductor-scheduler pid ")
    assert found["queue"]["pending"] == 1 and found["queue"]["running"] == 0
    assert found["queue"]["oldest_pending"]["job_id"] == held and found["queue"]["oldest_pending"]["age_s"] >= 0
    assert found["nodes"]["alive"] >= 1 and found["nodes"]["down"] == 0
    assert [p["name"] for p in found["partitions"]] == ["default"] and found["partitions"][0]["cpus_total"] >= 32
    assert found["components"]["database"] == found["components"]["queue"] == "ok"
    assert found["components"]["ray"].startswith("ok: ")
    assert text.returncode == 0, text.stderr
    assert "Scheduler:          answers" in text.stdout and "Lease:            held by conductor-scheduler" in text.stdout
    assert f"Oldest pending:   job {held}" in text.stdout and "Jobs:               1 pending (JobHeldUser 1), 0 running" in text.stdout
    assert "CPUS(A/I/T)" in text.stdout and f"conductor {found['version']}" in text.stdout


def test_status_says_when_no_scheduler_answers_and_exits_3(settings_factory, ray_cluster: str) -> None:
    settings = settings_factory("sqlite-embedded")  # no scheduler started in this namespace
    with serving(settings) as url:
        text, as_json = conductor_status(url), conductor_status(url, "--json")
    assert text.returncode == as_json.returncode == 3
    assert "Scheduler:          does not answer" in text.stdout
    found = json.loads(as_json.stdout)
    assert found["scheduler"]["answers"] is False and found["lease"] == {"held": False, "holder": ""}
