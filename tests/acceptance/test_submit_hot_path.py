"""The submit path's shortcuts keep the API's contract: the response is the job as stored, rendered
as FastAPI renders a response_model, and the request path's dependencies stay coroutines."""

from __future__ import annotations

import inspect

from fastapi.testclient import TestClient

from api import deps
from api.routes import jobs as job_routes
from api.schemas import JobOut

BODY = {"job": {"name": "hot", "account": "a", "cpus_per_task": 2, "memory_per_node": "1G",
                "current_working_directory": "/tmp", "environment": {"K": "v"}, "argv": ["x", "y"],
                "time_limit": "1:00:00", "begin_time": "2030-01-01T00:00:00Z"},
        "script": "#!/bin/bash\necho ünïcode\n"}


def _stored(client: TestClient, job_id: int) -> dict:
    """The stored job as a JobOut response body, the way FastAPI renders a response_model."""
    return JobOut.from_job(client.service.get(job_id)).model_dump(mode="json")  # type: ignore[attr-defined]


def test_submit_response_is_the_stored_job(client: TestClient) -> None:
    """submit writes its JobOut itself (json_response); it must equal FastAPI's own rendering of it."""
    submitted = client.post("/api/jobs/submit", json=BODY)
    assert submitted.status_code == 200, submitted.text
    assert submitted.headers["content-type"] == "application/json"
    body = submitted.json()
    assert body["array_task_ids"] == []
    assert body["job"] == _stored(client, body["job_id"])
    assert client.get(f"/api/jobs/{body['job_id']}").json()["name"] == "hot"


def test_array_submit_response_lists_every_task(client: TestClient) -> None:
    submitted = client.post("/api/jobs/submit", json={**BODY, "job": {**BODY["job"], "array": "0-2"}})
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert len(body["array_task_ids"]) == 3 and body["job_id"] == body["array_task_ids"][0]
    assert body["job"] == _stored(client, body["job_id"])


def test_batch_response_ids_are_the_stored_jobs_in_order(client: TestClient) -> None:
    names = [f"b{i}" for i in range(5)]
    response = client.post("/api/jobs/batch", json={"jobs": [{**BODY, "job": {**BODY["job"], "name": n}}
                                                            for n in names]})
    assert response.status_code == 200, response.text
    ids = response.json()["job_ids"]
    assert [client.get(f"/api/jobs/{i}").json()["name"] for i in ids] == names


def test_request_path_dependencies_are_coroutines() -> None:
    """A plain ``def`` dependency or route costs a thread-pool round trip per request (docs/PERFORMANCE.md)."""
    for function in (deps._service, deps._settings, deps._caller_from_security, job_routes.submit,
                     job_routes.submit_batch):
        assert inspect.iscoroutinefunction(function), function.__name__
