"""Issue 6, 2e: the API process killed (kill -9) during a burst of submissions."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from conductor import jobs
from conductor.config import Settings
from conductor.service import JobService
from tests.faults.conftest import kill9, runs_of, wait_until
from tests.helpers import api_answers, free_port

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]

SUBMITTERS = 4
#: Accepted submissions before the API is killed.
KILL_AFTER = 40
_REPO_ROOT = Path(__file__).resolve().parents[2]
_SERVE = ("import sys, uvicorn\nfrom api.app import create_app\nfrom conductor.config import Settings\n"
          "settings = Settings.model_validate_json(sys.argv[1])\n"
          "uvicorn.run(create_app(settings), host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')\n")


def _start_api(settings: Settings, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(_REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", _SERVE, settings.model_dump_json(), str(port)], env=env,
                            cwd=_REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class _Burst:
    """Submitters posting as fast as they can until the API stops answering; what each request got."""

    def __init__(self, url: str, body: dict) -> None:
        self.url, self.body = url, body
        self.accepted: list[int] = []
        self.failed = 0  # refused, or no answer: the client cannot know whether it was stored
        self.lock = threading.Lock()
        self.enough = threading.Event()

    def submit_until_down(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while True:
                try:
                    response = client.post("/api/jobs/submit", json=self.body)
                except httpx.HTTPError:
                    with self.lock:
                        self.failed += 1
                    return
                with self.lock:
                    if response.is_success:
                        self.accepted.append(response.json()["job_id"])
                        if len(self.accepted) >= KILL_AFTER:
                            self.enough.set()
                    else:
                        self.failed += 1


def test_api_killed_mid_burst_loses_no_accepted_job_and_half_stores_none(settings_factory, scheduler_factory,
                                                                         tmp_path: Path) -> None:
    settings = settings_factory("postgres-redis", worker_concurrency=8)
    service = JobService.from_settings(settings)
    scheduler_factory(settings)  # records the nodes the API checks submissions against
    port = free_port()
    api = _start_api(settings, port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: api_answers(url), 60, "the API to answer")
        script = f'#!/bin/bash\necho "$CONDUCTOR_RESTART_COUNT $$ $PPID" >> {tmp_path}/runs-$SLURM_JOB_ID\n'
        burst = _Burst(url, {"job": {"name": "burst", "cpus_per_task": 1,
                                     "current_working_directory": str(tmp_path)}, "script": script})
        submitters = [threading.Thread(target=burst.submit_until_down) for _ in range(SUBMITTERS)]
        for thread in submitters:
            thread.start()
        assert burst.enough.wait(60), "the burst did not get going"
        kill9(api.pid)
        for thread in submitters:
            thread.join(30)
    finally:
        api.kill()
        api.wait(10)

    accepted = sorted(burst.accepted)
    assert len(accepted) >= KILL_AFTER and burst.failed >= 1, (len(accepted), burst.failed)
    wait_until(lambda: all(j.state is jobs.JobState.COMPLETED for j in service.repository.get_many(accepted)), 60,
               "every accepted job to complete")
    # What the API stored for requests that got no answer must be whole: it runs like the others
    # (its entry may never have been written: the scheduler's resync adopts the row).
    with service.repository.engine.connect() as connection:
        stored = set(connection.execute(text("SELECT id FROM jobs")).scalars())
    unanswered = stored - set(accepted)
    assert len(unanswered) <= SUBMITTERS, "more rows than requests in flight at the kill"
    wait_until(lambda: all(j.state is jobs.JobState.COMPLETED for j in service.repository.get_many(stored)), 40,
               "every stored job to complete, answered or not")
    assert all(len(runs_of(tmp_path, i)) == 1 for i in stored), "each ran once"
    assert service.repository.unreleased_allocations() == []
