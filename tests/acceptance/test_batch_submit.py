"""POST /api/jobs/batch: many jobs stored and queued all or nothing, on both backends."""

from __future__ import annotations


import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.schemas import MAX_BATCH_JOBS
from conductor import queue
from conductor.config import Settings
from conductor.db.models import JobRow, QueueEntryRow
from conductor.service import NODES_MAX_AGE_S, JobService
from tests.helpers import node, wait_for


def _item(name: str, **job: object) -> dict:
    return {"job": {"name": name, "cpus_per_task": 1, "memory_per_node": "1G", **job},
            "script": "#!/bin/bash\ntrue\n"}


def _job_rows(service: JobService) -> int:
    with service.repository.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(JobRow))


def _queued_ids(settings: Settings, service: JobService) -> list[int]:
    """Job ids the queue carries, in queue order (Redis stream, or the embedded table)."""
    if settings.uses_redis:
        entries = redis.Redis.from_url(settings.redis_url).xrange(queue.stream_key(settings.ray_namespace))
        return [int(fields[queue.JOB_FIELD.encode()]) for _entry_id, fields in entries]
    with service.repository.engine.connect() as connection:
        return list(connection.scalars(select(QueueEntryRow.job_id).order_by(QueueEntryRow.id)))


def _assert_nothing_stored(settings: Settings, service: JobService) -> None:
    assert _job_rows(service) == 0
    assert _queued_ids(settings, service) == []


def test_batch_returns_ids_in_request_order_all_pending_and_queued(client: TestClient, settings: Settings) -> None:
    items = [_item(f"job-{i}") for i in range(5)]
    items[2] = _item("job-2", standard_output="out-%x-%j.txt", current_working_directory="/tmp", cpus_per_task=4)
    response = client.post("/api/jobs/batch", json={"jobs": items})
    assert response.status_code == 200, response.text
    ids = response.json()["job_ids"]
    assert len(ids) == 5 and ids == sorted(ids) and len(set(ids)) == 5
    stored = {job.id: job for job in client.service.repository.get_many(ids)}  # type: ignore[attr-defined]
    assert [stored[i].spec.name for i in ids] == [f"job-{i}" for i in range(5)]
    assert all(job.state.value == "PENDING" for job in stored.values())
    assert stored[ids[2]].stdout_path == f"/tmp/out-job-2-{ids[2]}.txt"
    assert stored[ids[2]].spec.per_node.cpus == 4
    assert stored[ids[0]].stdout_path == f"{settings.state_dir}/slurm-{ids[0]}.out"
    assert _queued_ids(settings, client.service) == ids  # type: ignore[attr-defined]
    single = client.post("/api/jobs/submit", json=_item("after")).json()["job_id"]
    assert single > ids[-1]


@pytest.mark.parametrize(("index", "change", "field", "reason_part"), [
    (3, {"cpus_per_task": 0}, "jobs.3.job.cpus_per_task", "greater than or equal to 1"),
    (1, {"memory_per_node": "8X"}, "jobs.1.job.memory_per_node", "not a size"),
    (2, {"cpus_per_task": 33}, "jobs.2.job.cpus_per_task", "largest node has 32"),
    (4, {"memory_per_node": "65G"}, "jobs.4.job.memory_per_node", "has 65536 MB"),
    (0, {"current_working_directory": "relative"}, "jobs.0.job.current_working_directory", "not an absolute"),
    (3, {"dependency": "afterok:999999"}, "jobs.3.job.dependency", "does not exist"),
    (1, {"array": "0-3"}, "jobs.1.job.array", "one at a time"),
    (2, {"colour": "blue"}, "jobs.2.job.colour", "Extra inputs are not permitted"),
])
def test_one_bad_item_is_named_and_nothing_is_stored(client, settings, index, change, field, reason_part) -> None:
    items = [_item(f"job-{i}") for i in range(5)]
    items[index]["job"].update(change)
    response = client.post("/api/jobs/batch", json={"jobs": items})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == [field], error
    assert reason_part in error["fields"][0]["reason"]
    _assert_nothing_stored(settings, client.service)  # type: ignore[attr-defined]


def test_a_bad_script_is_named(client: TestClient, settings: Settings) -> None:
    items = [_item("a"), {"job": {"name": "b"}}, _item("c")]
    response = client.post("/api/jobs/batch", json={"jobs": items})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"field": "jobs.1.script", "reason": "is required"}]
    items[1] = {"job": {"name": "b"}, "script": " "}
    response = client.post("/api/jobs/batch", json={"jobs": items})
    assert response.json()["error"]["fields"] == [{"field": "jobs.1.script", "reason": "must not be empty"}]
    _assert_nothing_stored(settings, client.service)  # type: ignore[attr-defined]


def test_unreachable_redis_gives_503_and_stores_nothing(backend: str, settings_factory) -> None:
    settings = settings_factory(backend, redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/jobs/batch", json={"jobs": [_item(f"job-{i}") for i in range(10)]})
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "unavailable"
        assert _job_rows(client.app.state.service) == 0


def test_a_node_that_joins_is_seen_by_submissions_within_the_node_list_age(client: TestClient) -> None:
    big = {"jobs": [_item("big", cpus_per_task=64)]}
    assert client.post("/api/jobs/batch", json=big).status_code == 422  # the node list is now fresh
    client.service.repository.replace_nodes([  # type: ignore[attr-defined]
        node("n1", 32, 65536, 0, {}, ray_node_id="ray-n1"), node("n2", 64, 65536, 0, {}, ray_node_id="ray-n2")])
    wait_for(lambda: client.post("/api/jobs/batch", json=big).status_code == 200,
             timeout_s=NODES_MAX_AGE_S + 5)


def test_batch_size_limit_is_enforced(client: TestClient, settings: Settings) -> None:
    for count in (0, MAX_BATCH_JOBS + 1):
        response = client.post("/api/jobs/batch", json={"jobs": [_item("x")] * count})
        assert response.status_code == 422, response.text
        assert [f["field"] for f in response.json()["error"]["fields"]] == ["jobs"]
        _assert_nothing_stored(settings, client.service)  # type: ignore[attr-defined]
    response = client.post("/api/jobs/batch", json={"jobs": [_item("x")] * MAX_BATCH_JOBS})
    assert response.status_code == 200, response.text
    ids = response.json()["job_ids"]
    assert ids == list(range(ids[0], ids[0] + MAX_BATCH_JOBS))
    assert _queued_ids(settings, client.service) == ids  # type: ignore[attr-defined]
    last = client.get(f"/api/jobs/{ids[-1]}").json()
    assert (last["state"], last["stdout_path"]) == ("PENDING", f"{settings.state_dir}/slurm-{ids[-1]}.out")
