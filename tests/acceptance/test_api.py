"""The REST API through FastAPI's TestClient: the seed's body, reads, and refusals that store nothing."""

from __future__ import annotations


import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from conductor import jobs
from conductor.config import Settings

SEED_BODY = {
    "job": {"account": "test", "name": "concurrent-job-1", "partition": "compute-high-mem",
            "ntasks_per_node": 1, "cpus_per_task": 4, "memory_per_node": "8G"},
    "script": "#!/bin/bash\necho \"Job 1 is running\"\nsleep 10",
}


def _stored(client: TestClient) -> list[int]:
    return client.service.repository.ids_in_state(jobs.JobState.PENDING)  # type: ignore[attr-defined]


def test_seed_body_is_accepted_and_returns_the_job_id(client: TestClient) -> None:
    response = client.post("/api/jobs/submit", json=SEED_BODY)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["state"] == "PENDING"
    assert (job["name"], job["account"], job["partition"]) == ("concurrent-job-1", "test", "compute-high-mem")
    assert (job["cpus"], job["memory_per_node_mb"], job["exit_code"]) == (4, 8192, "0:0")
    assert _stored(client) == [job_id]


def test_slurm_style_fields_are_accepted(client: TestClient) -> None:
    body = {"job": {"name": "x", "script": "#!/bin/bash\ntrue", "memory_per_node": 2048, "time_limit": 90,
                    "environment": ["A=1", "B=two=2"], "current_working_directory": "/tmp",
                    "standard_output": "out-%j.txt"}}
    response = client.post("/api/jobs/submit", json=body)
    assert response.status_code == 200, response.text
    job = response.json()["job"]
    assert (job["memory_per_node_mb"], job["time_limit_s"]) == (2048, 90 * 60)
    assert job["stdout_path"] == f"/tmp/out-{job['job_id']}.txt"
    stored = client.service.get(job["job_id"])  # type: ignore[attr-defined]
    assert stored.spec.environment == {"A": "1", "B": "two=2"}


@pytest.mark.parametrize(("change", "field", "reason_part"), [
    ({"cpus_per_task": 0}, "job.cpus_per_task", "greater than or equal to 1"),
    ({"cpus_per_task": -1}, "job.cpus_per_task", "greater than or equal to 1"),
    ({"cpus_per_task": 33}, "job.cpus_per_task", "largest node has 32"),
    ({"ntasks_per_node": 9}, "job.cpus_per_task", "needs 36 CPUs"),
    ({"memory_per_node": "8X"}, "job.memory_per_node", "not a size"),
    ({"memory_per_node": "65G"}, "job.memory_per_node", "largest node with 4 CPUs has 65536 MB"),
    ({"memory_per_node": "99999999999999999T"}, "job.memory_per_node", "must be at most"),
    ({"time_limit": "999999999999999999999"}, "job.time_limit", "must be at most"),
    ({"name": "a\x00b"}, "job.name", "NUL"),
    ({"cpus_per_task": True}, "job.cpus_per_task", "valid integer"),
    ({"environment": {"A=B": "1"}}, "job.environment", "not a variable name"),
    ({"time_limit": "1:2:3:4"}, "job.time_limit", "not a time limit"),
    ({"colour": "blue"}, "job.colour", "Extra inputs are not permitted"),
    ({"environment": ["NOEQUALS"]}, "job.environment", "not KEY=VALUE"),
    ({"current_working_directory": "relative/dir"}, "job.current_working_directory", "not an absolute path"),
])
def test_bad_input_is_refused_with_the_field_named_and_nothing_stored(client, change, field, reason_part) -> None:
    body = {"job": {**SEED_BODY["job"], **change}, "script": SEED_BODY["script"]}
    response = client.post("/api/jobs/submit", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert any(f["field"] == field and reason_part in f["reason"] for f in error["fields"]), error
    assert _stored(client) == []


def test_script_problems_are_refused(client: TestClient, settings: Settings) -> None:
    for script, reason_part in (("", "must not be empty"), ("x" * (settings.max_script_bytes + 1), "the limit is"),
                                ("echo no interpreter line\n", "This does not look like a batch script"),
                                (" #!/bin/sh\ntrue\n", "must start with #!")):
        response = client.post("/api/jobs/submit", json={"job": SEED_BODY["job"], "script": script})
        assert response.status_code == 422
        assert response.json()["error"]["fields"][0]["field"] == "script"
        assert reason_part in response.json()["error"]["message"]
    missing = client.post("/api/jobs/submit", json={"job": SEED_BODY["job"]})
    assert missing.status_code == 422 and "script: is required" in missing.json()["error"]["message"]
    assert _stored(client) == []


def test_bytes_that_are_not_utf8_are_refused(client: TestClient) -> None:
    raw = b'{"job": {"name": "x"}, "script": "#!/bin/bash\n\xff\xfe"}'
    response = client.post("/api/jobs/submit", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "error" in response.json() and "Traceback" not in response.text
    assert _stored(client) == []


def test_job_id_out_of_range_is_422(client: TestClient) -> None:
    response = client.get("/api/jobs/99999999999999999999999")
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["field"] == "job_id"


@pytest.mark.parametrize("ref", ["0", "0_3", "00"])
def test_job_id_zero_is_422_naming_the_field(client: TestClient, ref: str) -> None:
    """The path pattern allows it; job ids start at 1 (the schema fuzzer found a 500 here)."""
    response = client.get(f"/api/jobs/{ref}")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"][0]["field"] == "job_id"


def test_unknown_job_is_404_in_the_error_shape(client: TestClient) -> None:
    response = client.get("/api/jobs/999")
    assert response.status_code == 404
    assert response.json()["error"] == {"status": 404, "code": "not_found", "message": "job 999 does not exist",
                                        "fields": []}


def test_health_reports_each_component(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert {k: v for k, v in response.json()["components"].items() if k != "ray"} == {"database": "ok", "queue": "ok"}


def test_unreachable_queue_gives_503_with_retry_after_and_stores_nothing(settings_factory) -> None:
    settings = settings_factory("sqlite-embedded", redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/jobs/submit", json=SEED_BODY)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "unavailable"
        assert client.app.state.service.repository.ids_in_state(jobs.JobState.PENDING) == []
        health = client.get("/api/health")
        assert health.status_code == 503 and health.json()["components"]["database"] == "ok"
        assert health.json()["components"]["queue"].startswith("unavailable")


def test_openapi_documents_the_submit_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    job = schema["components"]["schemas"]["JobDescription"]["properties"]
    assert job["memory_per_node"]["description"].startswith("Memory per node")
    assert "/api/jobs/submit" in schema["paths"]


def test_paths_outside_the_allowed_directories_are_refused(settings_factory, tmp_path) -> None:
    settings = settings_factory("sqlite-embedded", allowed_dirs=(tmp_path / "ok",))
    with TestClient(create_app(settings)) as client:
        inside = {"job": {"current_working_directory": str(tmp_path / "ok" / "run"), "standard_output": "o-%j.txt"},
                  "script": "#!/bin/bash\ntrue\n"}
        assert client.post("/api/jobs/submit", json=inside).status_code == 200
        for field, change in (("current_working_directory", {"current_working_directory": str(tmp_path)}),
                              ("standard_output", {"standard_output": "../../etc/passwd"}),
                              ("standard_error", {"standard_error": "/etc/%j.err"})):
            body = {"job": {**inside["job"], **change}, "script": inside["script"]}
            response = client.post("/api/jobs/submit", json=body)
            assert response.status_code == 422, response.text
            assert response.json()["error"]["fields"][0]["field"] == f"job.{field}"
            assert "outside the allowed directories" in response.json()["error"]["message"]
        assert client.app.state.service.repository.ids_in_state(jobs.JobState.PENDING) == [1]
