"""slurmrestd compatibility: a client written for slurmrestd submits, polls and cancels unchanged.

Request bodies are taken from Slurm's own documentation and test suite (each one cites its
source).  No Ray: without a scheduler jobs stay PENDING, which is all submit, poll and cancel need.
"""

from __future__ import annotations

import getpass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.app import create_app
from api.slurm import error_numbers as slurm_errno
from api.slurm import schemas as slurm
from conductor import jobs
from conductor.config import Settings
from conductor.db.listing import JobFilter
from conductor.db.models import JobRow
from tests.helpers import node
from tests.slurm_bodies import QUICKSTART_BODY, TESTSUITE_BODY, TESTSUITE_HELD_BODY

VERSIONS = ["v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42", "v0.0.43", "v0.0.44"]
#: From v0.0.40 on: job_state a list, numbers and times {set, infinite, number}, verbose exit codes.
STRUCTURED = VERSIONS[1:]

def _all_jobs(client: TestClient) -> list[jobs.Job]:
    found, _ = client.service.list_jobs(JobFilter(), limit=1000)  # type: ignore[attr-defined]
    return found


def _submit(client: TestClient, body: Any, version: str = "v0.0.42", **kwargs: Any) -> dict:
    response = client.post(f"/slurm/{version}/job/submit", json=body, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def _job(client: TestClient, job_id: int | str, version: str = "v0.0.42") -> dict:
    response = client.get(f"/slurm/{version}/job/{job_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errors"] == [] and len(body["jobs"]) == 1
    return body["jobs"][0]


def _assert_slurm_error(response, status: int, description_part: str, source: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors", "warnings", "meta"}, body
    (error,) = body["errors"]
    assert set(error) == {"description", "error_number", "error", "source"}
    assert description_part in error["description"], error
    assert isinstance(error["error_number"], int) and error["error"]
    if source is not None:
        assert error["source"] == source, error
    assert body["meta"]["plugin"]["type"] == "openapi/slurmctld"
    return error


@pytest.mark.parametrize("version", VERSIONS)
def test_quickstart_body_is_accepted_with_warnings(client: TestClient, version: str) -> None:
    body = _submit(client, QUICKSTART_BODY, version)
    assert body["step_id"] == "batch" and body["job_submit_user_msg"] == "" and body["errors"] == []
    assert body["meta"]["plugin"]["data_parser"] == f"data_parser/{version}"
    if version in ("v0.0.40", "v0.0.41"):  # the deprecated result object, gone in v0.0.42
        assert body["result"]["job_id"] == body["job_id"] and body["result"]["error_code"] == 0
    else:
        assert "result" not in body
    sources = {warning["source"] for warning in body["warnings"]}
    assert sources == {"#/job/ntasks", "#/job/environment/0", "#/job/environment/1"}, body["warnings"]
    stored = client.service.get(body["job_id"])  # type: ignore[attr-defined]
    assert stored.spec.environment == {"PATH": "/bin:/usr/bin/:/usr/local/bin/",
                                       "LD_LIBRARY_PATH": "/lib/:/lib64/:/usr/local/lib"}
    assert (stored.spec.name, stored.spec.working_dir, stored.spec.ntasks_per_node) == ("test", "/tmp", 1)
    assert stored.spec.script == QUICKSTART_BODY["script"]


@pytest.mark.parametrize("version", STRUCTURED)
def test_client_written_for_slurmrestd_submits_polls_and_cancels(client: TestClient, version: str) -> None:
    """The flow of SchedMD's test_112_41.py::test_jobs, with its assertions, on each version."""
    resp = _submit(client, TESTSUITE_BODY, version)
    assert len(resp["warnings"]) == 0 and len(resp["errors"]) == 0
    assert resp["job_id"] and resp["step_id"]
    job_id = int(resp["job_id"])

    listing = client.get(f"/slurm/{version}/jobs/")
    assert listing.status_code == 200
    assert listing.json()["warnings"] == [] and listing.json()["errors"] == []
    assert job_id in [job["job_id"] for job in listing.json()["jobs"]]
    assert listing.json()["last_update"]["set"] is True

    job = _job(client, job_id, version)
    assert (job["job_id"], job["name"], job["partition"]) == (job_id, "test job", "debug")
    assert job["job_state"] == ["PENDING"] and job["exit_code"]["status"] == ["PENDING"]
    # a pending job's real priority (held ones show 0): what conductor's own sprio computes for it
    native = client.get(f"/api/jobs/{job_id}").json()["priority_factors"]["priority"]
    assert job["priority"] == {"set": True, "infinite": False, "number": native} and native > 0

    held = _submit(client, TESTSUITE_HELD_BODY, version)
    assert len(held["warnings"]) > 0 and len(held["errors"]) == 0  # priority 0 = held, as in Slurm
    held_id = int(held["job_id"])
    job = _job(client, held_id, version)
    assert job["priority"] == {"set": True, "infinite": False, "number": 0}
    assert job["hold"] is True and job["state_reason"] == "JobHeldUser"
    assert job["user_name"] == getpass.getuser()

    deleted = client.delete(f"/slurm/{version}/job/{held_id}")
    assert deleted.status_code == 200
    assert len(deleted.json()["warnings"]) == 0 and len(deleted.json()["errors"]) == 0
    if version == "v0.0.40":
        assert "status" not in deleted.json()
    else:
        (status,) = deleted.json()["status"]
        assert status["job_id"]["number"] == held_id and status["error"]["code"] == 0

    job = _job(client, held_id, version)
    assert (job["job_id"], job["name"], job["partition"]) == (held_id, "test job", "debug")
    assert job["user_name"] == getpass.getuser()
    assert job["job_state"] == ["CANCELLED"]
    assert job["end_time"]["set"] is True and job["exit_code"]["status"] == ["SUCCESS"]
    # ended jobs stay listed (MinJobAge); the native API sees the same job
    assert held_id in [j["job_id"] for j in client.get(f"/slurm/{version}/jobs/").json()["jobs"]]
    assert client.get(f"/api/jobs/{held_id}").json()["state"] == "CANCELLED"


def test_each_version_answers_in_its_own_shapes(client: TestClient) -> None:
    """One job read through every version: each one's differences from v0.0.42 (the slurmrestapi 25.11
    client's v0.0.43/v0.0.44 models; its 0.0.39 release's v0.0.39 models)."""
    job_id = _submit(client, {"job": {"name": "shapes", "current_working_directory": "/tmp",
                                      "script": "#!/bin/bash\ntrue"}}, "v0.0.44")["job_id"]
    client.delete(f"/slurm/v0.0.44/job/{job_id}")
    output = f"/tmp/slurm-{job_id}.out"  # sbatch's default; stderr goes there too unless given apart
    read = {version: client.get(f"/slurm/{version}/job/{job_id}").json() for version in VERSIONS}
    for version, body in read.items():
        (job,) = body["jobs"]
        assert (job["standard_output"], job["standard_error"], job["standard_input"]) == (output, output, "/dev/null")
        assert body["meta"]["plugin"]["data_parser"] == f"data_parser/{version}"
        assert ("stdout_expanded" in job) is (version in ("v0.0.43", "v0.0.44")), version
        assert ("submit_line" in job) is (version == "v0.0.44"), version
    old = read["v0.0.39"]
    (job,) = old["jobs"]
    assert job["job_state"] == "CANCELLED" and job["exit_code"] == 0
    assert isinstance(job["submit_time"], int) and job["end_time"] >= job["submit_time"] > 0
    assert job["priority"]["set"] is True and "last_update" not in old
    assert old["meta"]["Slurm"]["version"] == {"major": 23, "micro": 0, "minor": 2} and "slurm" not in old["meta"]
    new = read["v0.0.44"]
    (job,) = new["jobs"]
    assert job["job_state"] == ["CANCELLED"] and job["end_time"]["set"] is True
    assert job["step_id"]["job_id"] == {"set": True, "infinite": False, "number": job_id}
    assert (job["stdin_expanded"], job["stdout_expanded"], job["stderr_expanded"]) == ("/dev/null", output, output)
    assert new["meta"]["slurm"]["release"] == "25.11.0" and read["v0.0.43"]["meta"]["slurm"]["release"] == "25.05.0"
    assert new["last_update"]["set"] is True
    (ping,) = client.get("/slurm/v0.0.39/ping/").json()["pings"]
    assert ping["pinged"] == "UP" and "responding" not in ping


@pytest.mark.parametrize(("memory", "expected_mb"), [
    (2048, 2048),
    ({"set": True, "infinite": False, "number": 2048}, 2048),
    ("2048", 2048),
    ({"set": False, "infinite": False, "number": 0}, 0),
])
def test_memory_per_node_is_megabytes_as_int_or_struct(client: TestClient, memory: Any, expected_mb: int) -> None:
    body = {"job": {"name": "mem", "memory_per_node": memory, "current_working_directory": "/tmp",
                    "script": "#!/bin/bash\ntrue"}}
    job_id = _submit(client, body)["job_id"]
    assert client.service.get(job_id).spec.memory_per_node_mb == expected_mb  # type: ignore[attr-defined]
    assert _job(client, job_id)["memory_per_node"]["number"] == expected_mb


def test_memory_per_cpu_is_multiplied_by_the_jobs_cpus(client: TestClient) -> None:
    body = {"job": {"name": "mem", "cpus_per_task": 2, "tasks": 3, "memory_per_cpu": {"set": True, "number": 100},
                    "current_working_directory": "/tmp", "script": "#!/bin/bash\ntrue"}}
    job_id = _submit(client, body)["job_id"]
    job = _job(client, job_id)
    assert job["memory_per_node"]["number"] == 600
    assert (job["cpus"]["number"], job["cpus_per_task"]["number"], job["tasks_per_node"]["number"]) == (6, 2, 3)


@pytest.mark.parametrize(("limit", "seconds", "shown"), [
    (90, 90 * 60, {"set": True, "infinite": False, "number": 90}),
    ({"set": True, "infinite": False, "number": 30}, 30 * 60, {"set": True, "infinite": False, "number": 30}),
    ({"set": True, "infinite": True, "number": 0}, None, {"set": True, "infinite": True, "number": 0}),
    ({"set": False, "infinite": False, "number": 0}, None, {"set": True, "infinite": True, "number": 0}),
    (0, None, {"set": True, "infinite": True, "number": 0}),
])
def test_time_limit_is_minutes_as_int_or_struct(client: TestClient, limit: Any, seconds: int | None,
                                                shown: dict) -> None:
    body = {"job": {"name": "t", "time_limit": limit, "current_working_directory": "/tmp",
                    "script": "#!/bin/bash\ntrue"}}
    job_id = _submit(client, body)["job_id"]
    assert client.service.get(job_id).spec.time_limit_s == seconds  # type: ignore[attr-defined]
    assert _job(client, job_id)["time_limit"] == shown


def test_other_implemented_fields_map_to_the_job(client: TestClient) -> None:
    begin = int((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp())
    body = {"job": {"name": "full", "account": "physics", "partition": "gpu", "tasks_per_node": 2,
                    "cpus_per_task": 4, "nice": 10, "requeue": False, "argv": ["--epochs", "3"],
                    "standard_output": "out-%j.txt", "standard_error": "/tmp/err-%x.txt",
                    "current_working_directory": "/tmp", "begin_time": {"set": True, "number": begin},
                    "priority": 7, "environment": ["A=1", "B=two=2"], "script": "#!/bin/bash\ntrue"}}
    resp = _submit(client, body, headers={"X-SLURM-USER-NAME": "alice"})
    assert resp["warnings"] == []
    spec = client.service.get(resp["job_id"]).spec  # type: ignore[attr-defined]
    assert (spec.account, spec.partition, spec.ntasks_per_node, spec.cpus_per_task) == ("physics", "gpu", 2, 4)
    assert (spec.nice, spec.requeue, spec.argv, spec.priority, spec.user) == (10, False, ("--epochs", "3"), 7, "alice")
    assert spec.environment == {"A": "1", "B": "two=2"}
    assert spec.begin_time == datetime.fromtimestamp(begin, tz=timezone.utc)
    job = _job(client, resp["job_id"])
    assert job["standard_output"] == f"/tmp/out-{resp['job_id']}.txt" and job["standard_error"] == "/tmp/err-full.txt"
    assert job["standard_input"] == "/dev/null"
    # the priority the job runs by: the admin's 7 added, nice 10 taken off (the native API's sprio)
    factors = client.get(f"/api/jobs/{resp['job_id']}").json()["priority_factors"]
    assert (factors["admin"], factors["nice"]) == (7, 10)
    assert job["priority"]["number"] == factors["priority"] and job["user_name"] == "alice" and job["requeue"] is False
    assert job["eligible_time"]["number"] == begin
    dependent = _submit(client, {"job": {"name": "dep", "dependency": f"afterok:{resp['job_id']}", "hold": True,
                                         "kill_on_invalid_dependency": True, "current_working_directory": "/tmp",
                                         "script": "#!/bin/bash\ntrue"}})
    assert dependent["warnings"] == []
    job = _job(client, dependent["job_id"])
    # Slurm's view of it: what is still unfulfilled (the job it waits for is pending, no scheduler runs)
    assert job["dependency"] == f"afterok:{resp['job_id']}(unfulfilled)" and job["hold"] is True
    stored = client.service.get(dependent["job_id"]).spec  # type: ignore[attr-defined]
    assert stored.dependency == f"afterok:{resp['job_id']}" and stored.kill_on_invalid_dependency is True


def test_script_in_job_or_at_top_level(client: TestClient) -> None:
    in_job = _submit(client, {"job": {"name": "a", "current_working_directory": "/tmp", "script": "#!/bin/bash\n1"}})
    top = _submit(client, {"job": {"name": "b", "current_working_directory": "/tmp"}, "script": "#!/bin/bash\n2"},
                  "v0.0.41")
    assert in_job["warnings"] == [] and top["warnings"] == []  # slurmrestd does not warn on the deprecated place
    assert client.service.get(top["job_id"]).spec.script == "#!/bin/bash\n2"  # type: ignore[attr-defined]
    one_component = _submit(client, {"jobs": [{"name": "c", "current_working_directory": "/tmp",
                                               "script": "#!/bin/bash\n3"}]})
    assert client.service.get(one_component["job_id"]).spec.name == "c"  # type: ignore[attr-defined]


def test_unimplemented_and_unknown_fields_are_accepted_and_named_in_warnings(client: TestClient) -> None:
    body = {"job": {"name": "w", "current_working_directory": "/tmp", "script": "#!/bin/bash\ntrue",
                    "qos": "normal", "mail_type": ["END"], "mail_user": "a@example.org", "constraints": "avx2",
                    "exclusive": "user", "kill_warning_signal": "USR1", "rlimits": {"nofile": {"set": True,
                                                                                            "number": 1024}},
                    "standard_input": "/etc/hosts", "colour": "blue",
                    # empty or default values are not worth a warning
                    "reservation": "", "flags": [], "contiguous": False, "time_minimum": {"set": False},
                    "standard_error": None},
            "colour": "red"}
    resp = _submit(client, body)
    described = {w["source"]: w["description"] for w in resp["warnings"]}
    for name in ("qos", "mail_type", "mail_user", "constraints", "exclusive", "kill_warning_signal", "rlimits",
                 "standard_input", "colour"):
        assert f"#/job/{name}" in described, (name, described)
        assert f"job.{name}" in described[f"#/job/{name}"]
    assert "not implemented by conductor" in described["#/job/qos"]
    assert "not a field of Slurm's job_desc_msg" in described["#/job/colour"]
    assert "#/colour" in described
    assert not {"#/job/reservation", "#/job/flags", "#/job/contiguous", "#/job/time_minimum"} & set(described)
    assert client.service.get(resp["job_id"]).state is jobs.JobState.PENDING  # type: ignore[attr-defined]


_OK_JOB = {"name": "bad", "current_working_directory": "/tmp", "script": "#!/bin/bash\ntrue"}


@pytest.mark.parametrize(("change", "source", "description_part"), [
    ({"memory_per_node": "lots"}, "#/job/memory_per_node", "not a size"),
    ({"memory_per_node": {"set": True, "infinite": True}}, "#/job/memory_per_node", "infinite"),
    ({"memory_per_node": 70000}, "#/job/memory_per_node", "largest node"),
    ({"memory_per_node": {"set": True, "number": -1}}, "#/job/memory_per_node", "negative"),
    ({"memory_per_node": 100, "memory_per_cpu": 100}, "#/job/memory_per_cpu", "not both"),
    ({"memory_per_cpu": 5000, "cpus_per_task": 16}, "#/job/memory_per_cpu", "needs 80000 MB"),
    ({"time_limit": {"set": True, "number": -5}}, "#/job/time_limit", "negative"),
    ({"time_limit": "soon"}, "#/job/time_limit", "not a time limit"),
    ({"time_limit": {"sett": True}}, "#/job/time_limit", "unknown key 'sett'"),
    ({"cpus_per_task": 0}, "#/job/cpus_per_task", "greater than or equal to 1"),
    ({"cpus_per_task": 33}, "#/job/cpus_per_task", "largest node has 32"),
    ({"cpus_per_task": True}, "#/job/cpus_per_task", "not true or false"),
    ({"tasks_per_node": 40}, "#/job/cpus_per_task", "needs 40 CPUs"),  # the service names cpus_per_task
    ({"tasks": 5, "tasks_per_node": 2, "minimum_nodes": 2}, "#/job/tasks", "is not tasks_per_node 2 x 2 nodes"),
    ({"nodes": "many"}, "#/job/nodes", "is not a node count"),
    ({"tres_per_node": "gres/fpga:1"}, "#/job/tres_per_node", "only gres/gpu:N"),
    ({"environment": ["NOEQUALS"]}, "#/job/environment", "not KEY=VALUE"),
    ({"environment": "PATH=/bin"}, "#/job/environment", ""),
    ({"current_working_directory": "relative/dir"}, "#/job/current_working_directory", "not an absolute path"),
    ({"name": "a\x00b"}, "#/job/name", "NUL"),
    ({"priority": "high"}, "#/job/priority", "not a whole number"),
    ({"hold": "maybe"}, "#/job/hold", "not true or false"),
    ({"array": "5-1"}, "#/job/array", "empty"),
    ({"dependency": "afterok:999"}, "#/job/dependency", "job 999 does not exist"),
    ({"begin_time": {"set": True, "infinite": True}}, "#/job/begin_time", "infinite"),
    ({"argv": "--epochs 3"}, "#/job/argv", "list of strings"),
    ({"script": ""}, "#/job/script", "must not be empty"),
])
def test_bad_input_is_422_in_slurms_shape_and_stores_nothing(client: TestClient, change: dict, source: str,
                                                             description_part: str) -> None:
    response = client.post("/slurm/v0.0.42/job/submit", json={"job": {**_OK_JOB, **change}})
    error = _assert_slurm_error(response, 422, description_part, source)
    assert error["description"].startswith(source[2:].replace("/", "."))  # the description names the field
    assert _all_jobs(client) == []


@pytest.mark.parametrize(("body", "description_part"), [
    (b"", "empty"),
    (b"{not json", "not valid UTF-8 JSON"),
    (b'{"job": {"name": "\xff"}}', "not valid UTF-8 JSON"),
    (b"[]", "expected a JSON object"),
    (b'{"script": "#!/bin/bash\\ntrue"}', "job: is required"),
    (b'{"job": "x"}', "job: must be an object"),
    (b'{"jobs": [{"name": "a"}, {"name": "b"}]}', "heterogeneous"),
    (b'{"job": {"name": "x", "current_working_directory": "/tmp"}}', "script: is required"),
    (b'{"job": {"name": "x", "script": "#!/bin/bash\\n1"}, "script": "#!/bin/bash\\n2"}', "different contents"),
])
def test_malformed_bodies_are_422_and_store_nothing(client: TestClient, body: bytes, description_part: str) -> None:
    response = client.post("/slurm/v0.0.42/job/submit", content=body, headers={"content-type": "application/json"})
    _assert_slurm_error(response, 422, description_part)
    assert "Traceback" not in response.text
    assert _all_jobs(client) == []


@pytest.mark.parametrize("version", ["v0.0.39", "v0.0.42", "v0.0.44"])
def test_unknown_job_is_404_and_a_bad_id_422(client: TestClient, version: str) -> None:
    _assert_slurm_error(client.get(f"/slurm/{version}/job/999"), 404, "job 999 does not exist", "#/job_id")
    _assert_slurm_error(client.delete(f"/slurm/{version}/job/999"), 404, "job 999 does not exist")
    _assert_slurm_error(client.get(f"/slurm/{version}/job/abc"), 422, "not a job id")
    _assert_slurm_error(client.get(f"/slurm/{version}/job/99999999999999999999"), 422, "not a job id")
    _assert_slurm_error(client.get(f"/slurm/{version}/nodes/"), 404, "conductor serves")


def test_arrays_submit_list_and_cancel_as_slurm(client: TestClient) -> None:
    resp = _submit(client, {"job": {**_OK_JOB, "array": "0-3%2"}})
    array_id = resp["job_id"]
    listed = client.get(f"/slurm/v0.0.42/job/{array_id}").json()["jobs"]
    assert [job["array_task_id"]["number"] for job in listed] == [0, 1, 2, 3]
    assert {job["array_job_id"]["number"] for job in listed} == {array_id}
    assert {job["array_max_tasks"]["number"] for job in listed} == {2}
    task = _job(client, f"{array_id}_2")
    assert task["array_task_id"] == {"set": True, "infinite": False, "number": 2}
    _assert_slurm_error(client.get(f"/slurm/v0.0.42/job/{array_id}_9"), 404, "does not exist")
    deleted = client.delete(f"/slurm/v0.0.42/job/{array_id}").json()
    assert [status["step_id"] for status in deleted["status"]] == [f"{array_id}_{i}" for i in range(4)]
    assert all(status["error"]["code"] == 0 for status in deleted["status"])
    assert {job["job_state"][0] for job in client.get(f"/slurm/v0.0.42/job/{array_id}").json()["jobs"]} \
        == {"CANCELLED"}


def test_delete_with_a_signal_and_of_an_ended_job(client: TestClient) -> None:
    job_id = _submit(client, {"job": _OK_JOB})["job_id"]
    signalled = client.delete(f"/slurm/v0.0.42/job/{job_id}", params={"signal": "SIGUSR1"})
    assert signalled.status_code == 200
    assert signalled.json()["status"][0]["error"]["code"] == slurm_errno.ESLURM_JOB_PENDING
    assert "pending" in signalled.json()["warnings"][0]["description"]
    assert _job(client, job_id)["job_state"] == ["PENDING"]  # a signal does not cancel
    _assert_slurm_error(client.delete(f"/slurm/v0.0.42/job/{job_id}", params={"signal": "NOPE"}), 422,
                        "signal: 'NOPE' is not a signal", "#/signal")
    killed = client.delete(f"/slurm/v0.0.42/job/{job_id}", params={"signal": "KILL"})
    assert killed.json()["warnings"] == [] and _job(client, job_id)["job_state"] == ["CANCELLED"]
    again = client.delete(f"/slurm/v0.0.42/job/{job_id}")
    assert again.status_code == 200 and again.json()["errors"] == []
    assert again.json()["status"][0]["error"]["code"] == slurm_errno.ESLURM_ALREADY_DONE
    assert "already ended (CANCELLED)" in again.json()["warnings"][0]["description"]


def test_job_list_holds_active_jobs_and_recently_ended_ones(client: TestClient) -> None:
    ids = [_submit(client, {"job": _OK_JOB})["job_id"] for _ in range(3)]
    for job_id in ids[1:]:
        client.delete(f"/slurm/v0.0.42/job/{job_id}")
    long_ago = datetime.now(timezone.utc) - timedelta(seconds=slurm.MIN_JOB_AGE_S + 60)
    with client.service.repository.engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(update(JobRow).where(JobRow.id == ids[2]).values(end_time=long_ago))
    listed = [job["job_id"] for job in client.get("/slurm/v0.0.42/jobs").json()["jobs"]]
    assert listed == ids[:2]  # ids[2] ended longer ago than MinJobAge
    assert _job(client, ids[2])["job_state"] == ["CANCELLED"]  # but can still be read by id


def test_ping(client: TestClient, settings: Settings) -> None:
    response = client.get("/slurm/v0.0.42/ping/")
    assert response.status_code == 200 and response.json()["errors"] == []
    (ping,) = response.json()["pings"]
    assert (ping["hostname"], ping["pinged"], ping["responding"]) == (settings.node_name, "UP", True)


def test_unreachable_queue_is_503_in_slurms_shape_and_stores_nothing(settings_factory) -> None:
    settings = settings_factory("sqlite-embedded", redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        response = client.post("/slurm/v0.0.42/job/submit", json=TESTSUITE_BODY)
        error = _assert_slurm_error(response, 503, "queue is unavailable")
        assert error["error_number"] == slurm_errno.SLURM_COMMUNICATIONS_CONNECTION_ERROR
        assert response.headers["retry-after"] == "5"
        assert client.app.state.service.repository.ids_in_state(jobs.JobState.PENDING) == []
        ping = client.get("/slurm/v0.0.42/ping/")
        assert ping.status_code == 503 and ping.json()["pings"][0]["responding"] is False


def test_openapi_documents_the_slurm_paths_and_keeps_the_native_ones(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for version in VERSIONS:
        assert {f"/slurm/{version}/job/submit", f"/slurm/{version}/jobs/", f"/slurm/{version}/job/{{job_id}}",
                f"/slurm/{version}/ping/"} <= set(paths)
    assert "/api/jobs/submit" in paths and "/api/jobs/{job_id}" in paths


def _ended(state: jobs.JobState, exit_code: int | None, signal: int | None, **extra: Any) -> jobs.Job:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    return jobs.Job(id=5, spec=jobs.JobSpec(script="x", time_limit_s=90), state=state, reason=jobs.Reason.NONE,
                    submit_time=now, start_time=now, end_time=extra.get("end_time", now + timedelta(seconds=5)),
                    exit_code=exit_code, signal=signal, node_name="n1")


@pytest.mark.parametrize(("state", "exit_code", "signal", "status", "return_code", "signal_name"), [
    (jobs.JobState.COMPLETED, 0, 0, ["SUCCESS"], 0, ""),
    (jobs.JobState.FAILED, 3, 0, ["ERROR"], 3, ""),
    (jobs.JobState.CANCELLED, 0, 15, ["SIGNALED"], 0, "SIGTERM"),
    (jobs.JobState.FAILED, 0, 9, ["SIGNALED"], 0, "SIGKILL"),
])
def test_exit_code_in_slurms_verbose_shape(state, exit_code, signal, status, return_code, signal_name) -> None:
    info = slurm.job_info(_ended(state, exit_code, signal))
    assert info["job_state"] == [state.value]
    assert info["exit_code"]["status"] == status
    assert info["exit_code"]["return_code"] == {"set": True, "infinite": False, "number": return_code}
    assert info["exit_code"]["signal"]["name"] == signal_name
    assert info["exit_code"]["signal"]["id"]["set"] is bool(signal)
    assert info["time_limit"]["number"] == 2 and info["nodes"] == info["batch_host"] == "n1"


def test_running_job_shows_its_expected_end() -> None:
    running = _ended(jobs.JobState.RUNNING, None, None, end_time=None)
    info = slurm.job_info(running)
    assert info["exit_code"]["status"] == ["PENDING"]
    assert info["end_time"]["number"] - info["start_time"]["number"] == 90


@pytest.mark.parametrize(("fields", "layout"), [
    ({"tasks": 4, "tasks_per_node": 2}, (2, 2, 0)),
    ({"minimum_nodes": 2, "maximum_nodes": 4, "tasks": 6}, (2, 3, 0)),
    ({"nodes": "3-4", "tres_per_node": "gres/gpu:2"}, (3, 1, 2)),
    ({"tres_per_node": "gres:gpu:a100:1"}, (1, 1, 1)),
])
def test_nodes_tasks_and_gpus_map_as_slurm_lays_them_out(client: TestClient, fields: dict,
                                                         layout: tuple[int, int, int]) -> None:

    client.service.repository.replace_nodes(  # type: ignore[attr-defined]
        [node(f"n{i}", 8, 16384, 2, {}, ray_node_id=f"ray-n{i}") for i in range(1, 4)])
    body = {"job": {"name": "spread", "current_working_directory": "/tmp", "script": "#!/bin/bash\ntrue", **fields}}
    resp = _submit(client, body)
    assert resp["warnings"] == [], resp
    spec = client.service.get(resp["job_id"]).spec  # type: ignore[attr-defined]
    assert (spec.nodes, spec.ntasks_per_node, spec.gpus_per_node) == layout
    job = _job(client, resp["job_id"])
    assert job["node_count"]["number"] == layout[0]
    assert job["tres_per_node"] == (f"gres/gpu:{layout[2]}" if layout[2] else "")
