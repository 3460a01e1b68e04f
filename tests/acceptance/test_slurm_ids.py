"""Slurm's names for jobs in every route (42, 40_2), PATCH /api/jobs/{id} (scontrol update), FIRST_JOB_ID."""

from __future__ import annotations

from typing import Callable

import pytest
from fastapi.testclient import TestClient

from conductor.config import Settings
from conductor.service import JobService

SCRIPT = "#!/bin/bash\ntrue\n"


def _array(client: TestClient, indexes: str = "0-3") -> list[int]:
    response = client.post("/api/jobs/submit", json={"job": {"name": "arr", "array": indexes}, "script": SCRIPT})
    assert response.status_code == 200, response.text
    return response.json()["array_task_ids"]


def test_a_task_is_named_array_underscore_index_in_get_output_and_control(client: TestClient) -> None:
    ids = _array(client)
    array = ids[0]
    task = client.get(f"/api/jobs/{array}_2").json()
    assert (task["job_id"], task["display_id"]) == (ids[2], f"{array}_2")
    assert client.get(f"/api/jobs/{array}_2/output").status_code == 200
    assert client.post(f"/api/jobs/{array}_2/hold").json()["held"] == [ids[2]]
    assert client.post(f"/api/jobs/{array}_2/release").json()["released"] == [ids[2]]
    # task 0 has the array's own id: naming it as 40_0 must not stand for the whole array
    assert client.post(f"/api/jobs/{array}_0/cancel").json()["cancelled"] == [ids[0]]
    assert client.post(f"/api/jobs/{array}/cancel").json()["cancelled"] == ids[1:]


@pytest.mark.parametrize("path", ["42420_4", "1_99"])
def test_an_unknown_task_is_404_naming_it(client: TestClient, path: str) -> None:
    _array(client)
    response = client.get(f"/api/jobs/{path}")
    assert response.status_code == 404 and response.json()["error"]["message"] == f"job {path} does not exist"


@pytest.mark.parametrize("path", ["4_2_4", "4__2", "4_", "x"])
def test_what_int_would_misread_is_422(client: TestClient, path: str) -> None:
    response = client.get(f"/api/jobs/{path}")
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["field"] == "job_id"


def test_the_list_takes_slurm_ids(client: TestClient) -> None:
    ids = _array(client)
    single = client.post("/api/jobs/submit", json={"job": {"name": "one"}, "script": SCRIPT}).json()["job_id"]

    def listed(*refs: str) -> list[int]:
        response = client.get("/api/jobs", params=[("job", ref) for ref in refs])
        assert response.status_code == 200, response.text
        return [job["job_id"] for job in response.json()["jobs"]]

    assert listed(str(ids[0])) == ids
    assert listed(f"{ids[0]}_1,{ids[0]}_3") == [ids[1], ids[3]]
    assert listed(f"{ids[0]}_3", str(single)) == [ids[3], single]
    assert listed("424242") == []
    assert client.get("/api/jobs", params={"job": "1_x"}).status_code == 422


def test_patch_changes_a_pending_job_and_names_bad_fields(client: TestClient) -> None:
    job_id = client.post("/api/jobs/submit", json={"job": {"name": "p", "time_limit": 60}, "script": SCRIPT}
                         ).json()["job_id"]
    reply = client.patch(f"/api/jobs/{job_id}", json={"time_limit": "30:00", "priority": 7, "nice": 5,
                                                      "comment": "moved", "name": "renamed"})
    assert reply.status_code == 200 and reply.json()["updated"] == [job_id]
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["time_limit_s"], job["priority"], job["nice"], job["comment"], job["name"]) == (
        1800, 7, 5, "moved", "renamed")
    for body, field in (({"time_limit": "soon"}, "time_limit"), ({"bogus": 1}, "bogus"), ({"nice": "x"}, "nice")):
        response = client.patch(f"/api/jobs/{job_id}", json=body)
        assert response.status_code == 422 and response.json()["error"]["fields"][0]["field"] == field, response.text
    client.post(f"/api/jobs/{job_id}/cancel")
    assert client.patch(f"/api/jobs/{job_id}", json={"nice": 1}).json()["updated"] == []


def test_patch_of_an_array_id_changes_every_task(client: TestClient) -> None:
    ids = _array(client, "1-2")
    assert client.patch(f"/api/jobs/{ids[0]}", json={"comment": "all"}).json()["updated"] == ids
    assert client.patch(f"/api/jobs/{ids[0]}_2", json={"comment": "two"}).json()["updated"] == [ids[1]]


def test_first_job_id_numbers_a_new_database(backend: str, settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(backend, first_job_id=424200)
    service = JobService.from_settings(settings)
    try:
        from tests.helpers import spec

        first = service.submit(spec("true", working_dir="/tmp"))
        assert first.id == 424200
        again = JobService.from_settings(settings.model_copy(update={"first_job_id": 9_000_000}))
        assert again.submit(spec("true", working_dir="/tmp")).id == 424201  # a used database keeps its numbering
        again.close()
    finally:
        service.close()


def test_sqlite_never_reuses_an_id(settings_factory: Callable[..., Settings]) -> None:
    service = JobService.from_settings(settings_factory("sqlite"))
    try:
        from tests.helpers import spec

        last = service.submit(spec("true", working_dir="/tmp"))
        service.repository.delete_pending_many([last.id])
        assert service.submit(spec("true", working_dir="/tmp")).id == last.id + 1
    finally:
        service.close()
