"""Issue 6, 2d: every connection to the test's PostgreSQL database dropped (pg_terminate_backend) mid-run."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from conductor import jobs
from conductor.service import JobService
from tests.faults.conftest import runs_of, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]

#: Only this test's database: other people's tests use other databases on the same server.
TERMINATE_OURS = text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def _drop_connections(url: str, times: int, every_s: float, dropped: list[int]) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        for _ in range(times):
            time.sleep(every_s)
            with engine.connect() as connection:
                dropped.append(int(connection.execute(TERMINATE_OURS).scalar()))
    finally:
        engine.dispose()


def test_dropped_database_connections_mid_run_api_and_scheduler_recover(settings_factory, scheduler_factory,
                                                                        tmp_path: Path) -> None:
    settings = settings_factory("postgres-redis", worker_concurrency=4)
    service = JobService.from_settings(settings)
    scheduler_factory(settings)
    script = f'#!/bin/bash\necho "$CONDUCTOR_RESTART_COUNT $$ $PPID" >> {tmp_path}/runs-$SLURM_JOB_ID\nsleep 0.3\n'
    body = {"job": {"name": "db", "cpus_per_task": 1, "current_working_directory": str(tmp_path)}, "script": script}
    dropped: list[int] = []
    killer = threading.Thread(target=_drop_connections, args=(settings.database_url, 6, 0.5, dropped))
    accepted, statuses = [], []
    with TestClient(create_app(settings, service=service)) as api:
        killer.start()
        while killer.is_alive() or len(statuses) < 20:
            response = api.post("/api/jobs/submit", json=body)
            statuses.append(response.status_code)
            if response.status_code == 200:
                accepted.append(response.json()["job_id"])
            else:
                assert response.status_code == 503 and response.headers["Retry-After"], response.text
            time.sleep(0.02)
        killer.join()
        assert sum(dropped) > 0, "no connection was dropped: the test proved nothing"
        assert api.get("/api/jobs", params={"limit": 5}).status_code == 200, "the API serves again"

    wait_until(lambda: all(j.state is jobs.JobState.COMPLETED for j in service.repository.get_many(accepted)), 60,
               "every accepted job to complete")
    assert [len(runs_of(tmp_path, i)) for i in accepted] == [1] * len(accepted), "each ran once"
    stored = service.repository.get_many(range(1, max(accepted) + 50))
    assert all(job.state.is_terminal() for job in stored), "nothing stored is left behind"
    assert service.repository.unreleased_allocations() == []
    print(f"submissions {len(statuses)}: {statuses.count(200)} accepted, {statuses.count(503)} refused (503); "
          f"connections dropped per round: {dropped}")


@pytest.fixture
def two_leases(settings_factory):  # noqa: ANN001, ANN201
    """A lease held by one scheduler whose lock connection the server has just ended, and another's."""
    from conductor.db.lease import SchedulerLease
    from conductor.db.session import make_engine

    settings = settings_factory("postgres-redis")
    holder_engine, other_engine = make_engine(settings.database_url), make_engine(settings.database_url)
    holder, other = SchedulerLease(holder_engine), SchedulerLease(other_engine)
    holder.acquire()
    try:
        dropped: list[int] = []
        _drop_connections(settings.database_url, 1, 0.0, dropped)
        assert dropped and dropped[0] >= 1, dropped  # the holder's lock connection (and any idle other)
        yield holder, other
    finally:
        other.release()
        holder.release()
        holder_engine.dispose()
        other_engine.dispose()


def test_scheduler_lease_is_retaken_after_its_connection_is_dropped(two_leases) -> None:
    """The server ends the lock's connection: verify() (the scheduler calls it every 2 s) takes it again."""
    from conductor.exceptions import SchedulerBusy

    holder, other = two_leases
    holder.verify()
    with pytest.raises(SchedulerBusy):
        other.acquire()


def test_a_scheduler_whose_lease_was_taken_meanwhile_learns_it(two_leases) -> None:
    from conductor.exceptions import SchedulerBusy

    holder, other = two_leases
    other.acquire()  # in the gap before the holder's next check
    with pytest.raises(SchedulerBusy):
        holder.verify()


def test_api_answers_503_with_retry_after_while_the_database_is_unreachable(settings_factory, tmp_path) -> None:
    """Nothing listens at the database's address (a server that is down): 503 + Retry-After, never 500."""
    settings = settings_factory("postgres-redis")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = settings.model_copy(update={"database_url": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/conductor"})
    service = JobService.from_settings(down, apply_migrations=False)
    body = {"job": {"name": "down", "cpus_per_task": 1, "current_working_directory": str(tmp_path)},
            "script": "#!/bin/sh\ntrue"}
    with TestClient(create_app(down, service=service)) as api:
        for response in (api.post("/api/jobs/submit", json=body), api.get("/api/jobs/1"), api.get("/api/jobs")):
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"].isdigit()
            assert response.json()["error"]["code"] == "unavailable"
    service.close()
