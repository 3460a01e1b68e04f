"""Issue 6, 2c: Redis (a redis-server of the test's own) stopped and restarted, empty, mid-run."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from conductor import jobs
from conductor.service import JobService
from tests.faults.conftest import marked_script, queue_unacknowledged, runs_of, wait_until
from tests.helpers import spec

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]


def _body(script: str, name: str, working_dir: Path) -> dict:
    return {"job": {"name": name, "cpus_per_task": 1, "current_working_directory": str(working_dir)},
            "script": script}


def test_redis_restart_mid_run_refuses_with_503_loses_nothing_and_resumes(settings_factory, scheduler_factory,
                                                                         own_redis, tmp_path: Path) -> None:
    settings = settings_factory("postgres-redis", redis_url=own_redis.url, worker_concurrency=2)
    service = JobService.from_settings(settings)
    scheduler_factory(settings)
    hold = tmp_path / "hold"
    hold.touch()
    script = marked_script(tmp_path, hold)
    with TestClient(create_app(settings, service=service)) as api:
        accepted = []
        for i in range(5):  # two run, three wait
            response = api.post("/api/jobs/submit", json=_body(script, f"before-{i}", tmp_path))
            assert response.status_code == 200, response.text
            accepted.append(response.json()["job_id"])
        wait_until(lambda: sum(bool(runs_of(tmp_path, i)) for i in accepted) == 2, 30, "two jobs running")
        stored_before = set(service.repository.ids_in_state(jobs.JobState.PENDING))

        own_redis.stop()  # SIGKILL: the stream and its consumer group are lost with it
        for i in range(3):
            refused = api.post("/api/jobs/submit", json=_body(script, f"during-{i}", tmp_path))
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"].isdigit()
            assert refused.json()["error"]["code"] == "unavailable"
        assert set(service.repository.ids_in_state(jobs.JobState.PENDING)) == stored_before, "a refusal stores nothing"
        # The race this stands for: a job committed and XADDed just before Redis died, its entry
        # lost with it (no persistence).  Its row is all that is left.
        lost_entry = service.repository.add_job(spec(script, name="entry-lost", working_dir=str(tmp_path))).id
        accepted.append(lost_entry)
        hold.unlink()  # the running jobs end while Redis is down: their ends are recorded all the same

        own_redis.start()  # back, empty; nobody restarts the scheduler
        for i in range(2):
            response = api.post("/api/jobs/submit", json=_body(script, f"after-{i}", tmp_path))
            assert response.status_code == 200, response.text
            accepted.append(response.json()["job_id"])

    wait_until(lambda: all(j.state is jobs.JobState.COMPLETED for j in service.repository.get_many(accepted)), 60,
               "every accepted job to complete")
    assert [len(runs_of(tmp_path, i)) for i in accepted] == [1] * len(accepted), "each ran once"
    with service.repository.engine.connect() as connection:
        refused_rows = connection.execute(text("SELECT count(*) FROM jobs WHERE name LIKE 'during-%'")).scalar()
    assert refused_rows == 0, "no refused submission is half-stored"
    assert service.repository.unreleased_allocations() == []
    wait_until(lambda: queue_unacknowledged(settings) == 0, 15, "every entry of the new stream to be acknowledged")
