"""``GET /api/jobs`` and ``GET /api/jobs/{id}/output`` through FastAPI's TestClient, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from conductor import jobs
from conductor.config import Settings
from conductor.db.listing import MAX_LIMIT
from conductor.output import MAX_LIMIT_BYTES
from conductor.service import JobService
from tests.helpers import allocation


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    service = JobService.from_settings(settings)
    with TestClient(create_app(settings, service=service)) as test_client:
        test_client.service = service  # type: ignore[attr-defined]
        yield test_client
    service.close()


def _submit(client: TestClient, directory: Path | str = "/tmp", **job: object) -> int:
    body = {"job": {"name": "j", "current_working_directory": str(directory), **job}, "script": "#!/bin/bash\n"}
    response = client.post("/api/jobs/submit", json=body)
    assert response.status_code == 200, response.text
    return response.json()["job_id"]


def _start(client: TestClient, job_id: int) -> None:
    client.service.repository.start_jobs([allocation(job_id, 1, 0)])  # type: ignore[attr-defined]


def _finish(client: TestClient, job_id: int) -> None:
    _start(client, job_id)
    client.service.repository.finish_job(  # type: ignore[attr-defined]
        job_id, jobs.Ending(jobs.JobState.COMPLETED, jobs.Reason.NONE, exit_code=0))


def _listed(client: TestClient, query: str) -> list[int]:
    response = client.get(f"/api/jobs?{query}")
    assert response.status_code == 200, response.text
    return [job["job_id"] for job in response.json()["jobs"]]


def test_list_filters_by_state_user_and_id(client: TestClient) -> None:
    a = _submit(client, user="alice", account="phys", partition="gpu")
    b = _submit(client, user="bob")
    c = _submit(client, user="alice", name="other")
    _start(client, b)
    _finish(client, c)
    assert _listed(client, "") == [a, b, c]
    assert _listed(client, "state=PENDING&state=RUNNING") == [a, b]
    assert _listed(client, "state=pending,completed") == [a, c]
    assert _listed(client, "user=alice") == [a, c]
    assert _listed(client, "user=alice&account=phys&partition=gpu") == [a]
    assert _listed(client, "name=other") == [c]
    assert _listed(client, f"job_id={a}&job_id={b}") == [a, b]
    assert _listed(client, "ended_since=2000-01-01") == [c]
    assert _listed(client, "since=2000-01-01T00:00:00%2B05:00&until=2000-01-02") == []
    job = client.get(f"/api/jobs?job_id={b}").json()["jobs"][0]
    assert job == client.get(f"/api/jobs/{b}").json()
    assert (job["state"], job["node"]) == ("RUNNING", "n1")


def test_list_pages_follow_next_cursor(client: TestClient) -> None:
    ids = [_submit(client) for _ in range(5)]
    first = client.get("/api/jobs?limit=2").json()
    assert [j["job_id"] for j in first["jobs"]] == ids[:2] and first["next_cursor"] == ids[1]
    second = client.get(f"/api/jobs?limit=2&cursor={first['next_cursor']}").json()
    third = client.get(f"/api/jobs?limit=2&cursor={second['next_cursor']}").json()
    assert [j["job_id"] for j in second["jobs"] + third["jobs"]] == ids[2:]
    assert third["next_cursor"] is None


@pytest.mark.parametrize(("query", "field", "reason_part"), [
    ("state=RUNNING&state=SLEEPING", "state", "'SLEEPING' is not a job state"),
    ("limit=0", "limit", "greater than or equal to 1"),
    ("limit=1001", "limit", "less than or equal to 1000"),
    ("job_id=abc", "job_id.0", "valid integer"),
    ("since=yesterday", "since", "datetime"),
    ("colour=blue", "colour", "Extra inputs are not permitted"),
])
def test_bad_list_queries_are_422_naming_the_field(client: TestClient, query: str, field: str,
                                                   reason_part: str) -> None:
    response = client.get(f"/api/jobs?{query}")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert any(f["field"] == field and reason_part in f["reason"] for f in error["fields"]), error


def _output(client: TestClient, job_id: int, query: str = "") -> tuple[str, dict[str, str]]:
    response = client.get(f"/api/jobs/{job_id}/output?{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    headers = {k.removeprefix("x-conductor-"): v for k, v in response.headers.items() if k.startswith("x-conductor-")}
    return response.text, headers


def test_output_reads_the_file_by_offset_limit_and_tail(client: TestClient, tmp_path: Path) -> None:
    job_id = _submit(client, tmp_path)
    _start(client, job_id)
    (tmp_path / f"slurm-{job_id}.out").write_bytes(b"line one\nline two\n")
    text, headers = _output(client, job_id)
    assert text == "line one\nline two\n"
    assert headers == {"output-size": "18", "output-offset": "0", "output-next-offset": "18", "job-state": "RUNNING"}
    text, headers = _output(client, job_id, "offset=5&limit=3")
    assert (text, headers["output-next-offset"]) == ("one", "8")
    text, headers = _output(client, job_id, "tail=9")
    assert (text, headers["output-offset"]) == ("line two\n", "9")
    assert _output(client, job_id, "offset=100")[0] == ""


def test_stderr_is_its_own_file_and_bad_bytes_are_replaced(client: TestClient, tmp_path: Path) -> None:
    job_id = _submit(client, tmp_path, standard_error="err-%j.txt")
    _finish(client, job_id)
    (tmp_path / f"slurm-{job_id}.out").write_bytes(b"out\n")
    (tmp_path / f"err-{job_id}.txt").write_bytes(b"bad \xff byte, caf\xc3")
    assert _output(client, job_id)[0] == "out\n"
    text, headers = _output(client, job_id, "stream=stderr")
    assert text == "bad \ufffd byte, caf\ufffd"  # the job has ended: nothing more will complete the last char
    assert (headers["output-size"], headers["job-state"]) == ("16", "COMPLETED")


def test_a_character_cut_by_a_running_job_waits_for_its_end(client: TestClient, tmp_path: Path) -> None:
    job_id = _submit(client, tmp_path)
    _start(client, job_id)
    path = tmp_path / f"slurm-{job_id}.out"
    path.write_bytes("café".encode()[:-1])
    text, headers = _output(client, job_id)
    assert (text, headers["output-next-offset"], headers["output-size"]) == ("caf", "3", "4")
    path.write_bytes("café!".encode())
    assert _output(client, job_id, "offset=3")[0] == "é!"


def test_output_of_a_job_without_a_file_is_empty(client: TestClient, tmp_path: Path) -> None:
    pending = _submit(client, tmp_path)
    (tmp_path / f"slurm-{pending}.out").write_text("left over from someone else\n")
    running = _submit(client, tmp_path)
    _start(client, running)
    for job_id in (pending, running):
        text, headers = _output(client, job_id)
        assert (text, headers["output-size"], headers["output-next-offset"]) == ("", "0", "0")


def test_output_errors_keep_the_error_shape(client: TestClient) -> None:
    missing = client.get("/api/jobs/999/output")
    assert missing.status_code == 404
    assert missing.json()["error"] == {"status": 404, "code": "not_found", "message": "job 999 does not exist",
                                       "fields": []}
    job_id = _submit(client)
    for query, field in (("stream=stdin", "stream"), ("offset=-1", "offset"), ("limit=0", "limit"),
                         ("tail=0", "tail")):
        response = client.get(f"/api/jobs/{job_id}/output?{query}")
        assert response.status_code == 422 and response.json()["error"]["fields"][0]["field"] == field


def test_openapi_describes_every_query_field_with_an_example(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, expected in (("/api/jobs", {"state", "user", "account", "partition", "name", "job_id", "job", "since",
                                          "until", "ended_since", "ended_until", "cursor", "limit"}),
                           ("/api/jobs/{job_id}/output", {"job_id", "stream", "offset", "limit", "tail"})):
        parameters = paths[path]["get"]["parameters"]
        assert {p["name"] for p in parameters} == expected
        for parameter in parameters:
            assert parameter.get("description"), (path, parameter)
            assert parameter["schema"].get("examples") or parameter.get("examples"), (path, parameter)
    limits = {(path, p["name"]): _maximum(p["schema"]) for path in ("/api/jobs", "/api/jobs/{job_id}/output")
              for p in paths[path]["get"]["parameters"]}
    assert limits["/api/jobs", "limit"] == MAX_LIMIT
    assert limits["/api/jobs/{job_id}/output", "limit"] == limits["/api/jobs/{job_id}/output", "tail"] == \
        MAX_LIMIT_BYTES
    output = paths["/api/jobs/{job_id}/output"]["get"]["responses"]
    assert "X-Conductor-Output-Size" in output["200"]["headers"] and "404" in output


def _maximum(schema: dict) -> int | None:
    """A parameter's maximum, also when it is optional (anyOf [integer, null])."""
    return schema.get("maximum") or next((s["maximum"] for s in schema.get("anyOf", []) if "maximum" in s), None)
