"""LOG_FORMAT=json in the scheduler actor: a real job's state changes are JSON lines with its id, state and node."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conductor.service import JobService
from tests.helpers import spec, wait_for

pytestmark = pytest.mark.ray


def _json_lines(handle: object) -> list[dict]:
    """The JSON lines of the actor's stderr, where Ray writes it (this host's session: logs/worker-*-PID.err)."""
    import ray

    pid = ray.get(handle.__ray_call__.remote(lambda _self: os.getpid()), timeout=30)  # type: ignore[attr-defined]
    logs_dir = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    found = []
    for path in logs_dir.glob(f"worker-*-{pid}.err"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))  # every line conductor writes there is whole JSON
    return found


def test_a_jobs_state_changes_are_json_lines_with_job_id_state_and_node(settings_factory, scheduler_factory,
                                                                         tmp_path: Path) -> None:
    settings = settings_factory("sqlite-embedded", log_format="json")
    service = JobService.from_settings(settings)  # migrates the schema
    handle = scheduler_factory(settings)
    try:
        job_id = service.submit(spec("exit 3\n", working_dir=str(tmp_path))).id
        wait_for(lambda: service.get(job_id).state.is_terminal(), 30)
    finally:
        service.close()

    def about_the_job() -> list[dict]:
        return [line for line in _json_lines(handle) if line.get("job_id") == job_id]

    lines = wait_for(lambda: len(found := about_the_job()) >= 2 and found, 15)
    running = next(line for line in lines if line.get("state") == "RUNNING")
    assert running["node"] == "testnode" and running["level"] == "INFO" and str(job_id) in running["message"]
    ended = next(line for line in lines if line.get("state") == "FAILED")
    assert ended["node"] == "testnode" and ended["reason"] == "NonZeroExitCode"
    assert ended["logger"] == "conductor.scheduler.actor" and "time" in ended
