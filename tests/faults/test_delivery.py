"""Issue 6, item 1: at-least-once delivery, the database as the truth, reconcile of database and queue."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from conductor import jobs, queue
from conductor.scheduler.actor import PENDING_RESYNC_S, READ_BATCH
from conductor.service import JobService
from tests.faults.conftest import runs_of, wait_until
from tests.helpers import spec

pytestmark = [pytest.mark.ray, pytest.mark.timeout(90)]

RUN_SCRIPT = '#!/bin/bash\necho "$CONDUCTOR_RESTART_COUNT $$ $PPID" >> {markers}/runs-$SLURM_JOB_ID\n'


def _pel(settings) -> int:  # noqa: ANN001
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return client.xpending(queue.stream_key(settings.ray_namespace), queue.GROUP)["pending"]
    finally:
        client.close()


def test_entries_of_a_dead_consumer_are_claimed_run_once_and_acknowledged(settings_factory, scheduler_factory,
                                                                          tmp_path: Path) -> None:
    """A consumer (a scheduler on another host) read entries and died: the next scheduler claims them."""
    settings = settings_factory("postgres-redis")
    service = JobService.from_settings(settings)
    script = RUN_SCRIPT.format(markers=tmp_path)
    ids = [service.submit(spec(script, name=f"d{i}", working_dir=str(tmp_path))).id for i in range(3)]
    client = redis.Redis.from_url(settings.redis_url)
    key = queue.stream_key(settings.ray_namespace)
    client.xgroup_create(key, queue.GROUP, id="0", mkstream=True)
    taken = client.xreadgroup(queue.GROUP, "scheduler-deadhost", {key: ">"},
                              count=READ_BATCH)
    client.close()
    assert sum(len(messages) for _, messages in taken) == 3 and _pel(settings) == 3

    scheduler_factory(settings)
    wait_until(lambda: all(j.state is jobs.JobState.COMPLETED for j in service.repository.get_many(ids)), 30,
               "the claimed jobs to complete")
    wait_until(lambda: _pel(settings) == 0, 10, "the claimed entries to be acknowledged")
    assert [len(runs_of(tmp_path, i)) for i in ids] == [1, 1, 1]


def test_a_pending_row_without_queue_entry_is_adopted_by_a_running_scheduler(settings_factory, scheduler_factory,
                                                                           tmp_path: Path) -> None:
    """The row committed, its entry never written (API killed in between) or lost (Redis restarted empty).

    One backend: the resync reads the database only, whatever the queue (the embedded queue's
    start is covered by test_scheduler_crash on both backends).
    """
    settings = settings_factory("postgres-redis")
    service = JobService.from_settings(settings)
    scheduler_factory(settings)
    script = RUN_SCRIPT.format(markers=tmp_path)
    queued = service.submit(spec(script, name="queued", working_dir=str(tmp_path))).id
    wait_until(lambda: service.get(queued).state is jobs.JobState.COMPLETED, 30, "the queued job to complete")
    orphan = service.repository.add_job(spec(script, name="no-entry", working_dir=str(tmp_path))).id  # no push

    wait_until(lambda: service.get(orphan).state is jobs.JobState.COMPLETED, PENDING_RESYNC_S + 20,
               "the scheduler to adopt the row")
    assert len(runs_of(tmp_path, orphan)) == 1


def test_a_row_that_cannot_be_scheduled_does_not_keep_the_scheduler_from_starting(settings_factory, scheduler_factory,
                                                                                 tmp_path: Path) -> None:
    """A PENDING row the scheduler cannot take in (here a --dependency no parser accepts, as a row
    written by another version might hold) is left PENDING with the reason; every other job runs."""
    from sqlalchemy import text

    settings = settings_factory("postgres-redis")
    service = JobService.from_settings(settings)
    script = RUN_SCRIPT.format(markers=tmp_path)
    bad = service.repository.add_job(spec(script, name="bad", working_dir=str(tmp_path))).id
    good = service.repository.add_job(spec(script, name="good", working_dir=str(tmp_path))).id
    with service.repository.engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET dependency = 'sometime:1' WHERE id = :id"), {"id": bad})

    scheduler_factory(settings)  # fails here if the bad row breaks the start
    wait_until(lambda: service.get(good).state is jobs.JobState.COMPLETED, 30, "the good job to complete")
    held = service.get(bad)
    assert held.state is jobs.JobState.PENDING and "cannot schedule the job" in held.reason_message, held
    assert runs_of(tmp_path, bad) == []
