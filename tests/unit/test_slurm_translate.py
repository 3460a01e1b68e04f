"""Slurm's job_submit_req -> conductor's SubmitRequest (api/slurm/translate.py), pure: no app, no database.

The bodies are Slurm's documented ones (tests/slurm_bodies.py, each citing its source) and small
job_desc_msg variations of them; the assertions say what each field becomes, field by field
(conductor's JobDescription: memory in MB, time limits in seconds).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from api.slurm.error_numbers import ESLURM_REST_FAIL_PARSING, ESLURM_REST_INVALID_JOBS_DESC
from api.slurm.schemas import SlurmError
from api.slurm.translate import Translation, translate
from tests.slurm_bodies import QUICKSTART_BODY, TESTSUITE_BODY, TESTSUITE_HELD_BODY, TESTSUITE_SCRIPT

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)

#: The example of conductor's own OpenAPI page for these routes (api/slurm/routes.py): the script inside
#: job_desc_msg (v0.0.41+) and the {set, infinite, number} structs of parsers.c (memory_per_node: MB per
#: node; time_limit: minutes).
STRUCT_BODY = {"job": {"name": "test", "tasks": 1, "cpus_per_task": 2,
                       "memory_per_node": {"set": True, "number": 1024},
                       "time_limit": {"set": True, "number": 30}, "current_working_directory": "/tmp",
                       "environment": ["PATH=/bin:/usr/bin/:/usr/local/bin/"],
                       "script": "#!/bin/bash\necho it works"}}


def _translate(body: Any, version: str = "v0.0.42", **kwargs: Any) -> Translation:
    return translate(body, version=version, now=NOW, **kwargs)


def _job(fields: dict, **extra: Any) -> dict:
    return {"job": {"current_working_directory": "/tmp", "script": "#!/bin/bash\ntrue", **fields}, **extra}


def _refused(body: Any) -> SlurmError:
    with pytest.raises(SlurmError) as caught:
        _translate(body)
    return caught.value


def _sources(translation: Translation) -> list[str]:
    return [warning["source"] for warning in translation.warnings.items]


def test_quickstart_body_reads_ntasks_and_colon_environment_with_warnings() -> None:
    translation = _translate(QUICKSTART_BODY, "v0.0.40")
    request, job = translation.request, translation.request.job
    assert request.script == "#!/bin/bash\necho it works" and job.script is None
    assert (job.name, job.current_working_directory) == ("test", "/tmp")
    assert job.environment == {"PATH": "/bin:/usr/bin/:/usr/local/bin/",
                               "LD_LIBRARY_PATH": "/lib/:/lib64/:/usr/local/lib"}
    assert (job.ntasks_per_node, job.nodes, job.cpus_per_task) == (1, 1, 1)  # ntasks 1, read as tasks
    assert (job.memory_per_node, job.time_limit, job.gpus_per_node, job.hold) == (None, None, 0, False)
    assert _sources(translation) == ["#/job/environment/0", "#/job/environment/1", "#/job/ntasks"]
    assert "read as PATH=/bin:/usr/bin/:/usr/local/bin/" in translation.warnings.items[0]["description"]
    assert translation.warnings.items[2]["description"] == \
        "job.ntasks is not a job_desc_msg field of v0.0.40; read as tasks"
    assert translation.fields["ntasks_per_node"] == "job.ntasks"  # a refusal of the count names what was sent
    assert translation.fields["script"] == "script"


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41", "v0.0.42"])
def test_testsuite_body_translates_without_warnings(version: str) -> None:
    translation = _translate(TESTSUITE_BODY, version)
    job = translation.request.job
    assert translation.request.script == TESTSUITE_SCRIPT
    assert (job.partition, job.name, job.current_working_directory) == ("debug", "test job", "/tmp/")
    assert job.environment == {"PATH": "/bin/:/sbin/:/usr/bin/:/usr/sbin/"}
    assert (job.account, job.user, job.priority, job.nice, job.requeue, job.hold) == ("", "", 0, 0, True, False)
    assert translation.warnings.items == []


def test_testsuite_held_body_holds_the_job_as_slurm_does() -> None:
    translation = _translate(TESTSUITE_HELD_BODY)
    job = translation.request.job
    assert (job.hold, job.priority) == (True, 0)
    assert _sources(translation) == ["#/job/priority"]
    assert "0 holds the job" in translation.warnings.items[0]["description"]
    assert translation.fields["hold"] == "job.priority"


def test_number_structs_and_script_inside_the_job() -> None:
    translation = _translate(STRUCT_BODY)
    request, job = translation.request, translation.request.job
    assert request.script is None and job.script == "#!/bin/bash\necho it works"
    assert (job.cpus_per_task, job.ntasks_per_node, job.nodes) == (2, 1, 1)
    assert job.memory_per_node == 1024  # MB
    assert job.time_limit == 30 * 60  # minutes -> seconds
    assert job.environment == {"PATH": "/bin:/usr/bin/:/usr/local/bin/"}
    assert translation.warnings.items == []
    assert translation.fields["script"] == "job.script"


@pytest.mark.parametrize(("value", "cpus"), [
    (3, 3), ("3", 3), (3.0, 3), ({"set": True, "number": 3}, 3), ({"set": True, "number": "3"}, 3),
    ({"set": False, "number": 3}, 1), ({"number": 3, "infinite": False}, 3), ({}, 1),
    (2**16 - 2, 1),  # NO_VAL16: not set
])
def test_numbers_in_every_form_slurm_sends(value: Any, cpus: int) -> None:
    assert _translate(_job({"cpus_per_task": value})).request.job.cpus_per_task == cpus


@pytest.mark.parametrize(("value", "seconds"), [
    ({"set": True, "infinite": True}, None), (2**32 - 1, None), (0, None),  # INFINITE and 0: no limit
    ({"set": True, "number": 90}, 90 * 60), ("1:00:00", 3600), (2**32 - 2, None),  # NO_VAL: not set
])
def test_time_limit_is_minutes_and_infinite_means_none(value: Any, seconds: int | None) -> None:
    assert _translate(_job({"time_limit": value})).request.job.time_limit == seconds


@pytest.mark.parametrize(("fields", "nodes", "per_node", "node_source", "tasks_source"), [
    ({"tasks": 4, "tasks_per_node": 2}, 2, 2, "job.tasks", "job.tasks_per_node"),
    ({"tasks": 5, "tasks_per_node": 2}, 3, 2, "job.tasks", "job.tasks_per_node"),  # rounded up, as in Slurm
    ({"minimum_nodes": 2, "maximum_nodes": 4, "tasks": 6}, 2, 3, "job.minimum_nodes", "job.tasks"),
    ({"nodes": "3-4"}, 3, 1, "job.nodes", "job.tasks_per_node"),
    ({"nodes": 2, "tasks": 3}, 2, 2, "job.nodes", "job.tasks"),
    ({"nodes": "1", "minimum_nodes": 2}, 2, 1, "job.minimum_nodes", "job.tasks_per_node"),
    ({"tasks": 3}, 1, 3, None, "job.tasks"),
])
def test_tasks_are_laid_out_over_nodes(fields: dict, nodes: int, per_node: int, node_source: str | None,
                                       tasks_source: str) -> None:
    translation = _translate(_job(fields))
    assert (translation.request.job.nodes, translation.request.job.ntasks_per_node) == (nodes, per_node)
    assert translation.fields.get("nodes") == node_source
    assert translation.fields["ntasks_per_node"] == tasks_source
    assert translation.warnings.items == []


@pytest.mark.parametrize(("tres", "gpus"), [("gres/gpu:2", 2), ("gres:gpu:1", 1), ("gres/gpu:a100:4", 4), ("", 0)])
def test_tres_per_node_gpus(tres: str, gpus: int) -> None:
    assert _translate(_job({"tres_per_node": tres})).request.job.gpus_per_node == gpus


def test_memory_per_cpu_is_times_the_cpus_of_a_node() -> None:
    translation = _translate(_job({"cpus_per_task": 2, "tasks": 3, "memory_per_cpu": {"set": True, "number": 100}}))
    assert translation.request.job.memory_per_node == 100 * 2 * 3
    assert translation.fields["memory_per_node"] == "job.memory_per_cpu"
    assert _translate(_job({"memory_per_node": "8G"})).request.job.memory_per_node == 8192


def test_scheduling_fields() -> None:
    job = _translate(_job({"priority": 7, "nice": -5, "requeue": "no", "hold": 1, "dependency": "afterok:3",
                           "begin_time": "now+1hour", "array": "0-3%2", "account": "physics",
                           "standard_output": "out-%j.txt", "standard_error": "", "argv": ["-x"],
                           "kill_on_invalid_dependency": True})).request.job
    assert (job.priority, job.nice, job.requeue, job.hold, job.kill_on_invalid_dependency) == (7, -5, False, True, True)
    assert (job.dependency, job.array, job.account, job.argv) == ("afterok:3", "0-3%2", "physics", ["-x"])
    assert job.begin_time == NOW + timedelta(hours=1)
    assert (job.standard_output, job.standard_error) == ("out-%j.txt", "")
    stamp = _translate(_job({"begin_time": {"set": True, "number": 1_800_000_000}})).request.job.begin_time
    assert stamp == datetime.fromtimestamp(1_800_000_000, timezone.utc)


def test_one_component_of_jobs_and_the_callers_user() -> None:
    translation = _translate({"jobs": [{"name": "het", "tasks": 2, "current_working_directory": "/tmp",
                                        "script": "#!/bin/bash\ntrue", "qos": "high"}]}, user="alice")
    assert (translation.request.job.name, translation.request.job.ntasks_per_node) == ("het", 2)
    assert translation.request.job.user == "alice"
    assert translation.fields["ntasks_per_node"] == "jobs.0.tasks"
    assert _sources(translation) == ["#/jobs/0/qos"]


def test_fields_conductor_does_not_implement_are_named_and_empty_ones_are_not() -> None:
    translation = _translate(_job({"qos": "high", "mail_type": ["END"], "colour": "blue", "comment": "",
                                   "exclusive": False, "standard_input": "/etc/hosts",
                                   "reservation": {"set": False}}, extra=1))
    descriptions = {w["source"]: w["description"] for w in translation.warnings.items}
    assert set(descriptions) == {"#/extra", "#/job/qos", "#/job/mail_type", "#/job/colour", "#/job/standard_input"}
    assert descriptions["#/job/qos"] == "Field job.qos is not implemented by conductor; ignored"
    assert descriptions["#/job/colour"] == "Field job.colour is not a field of Slurm's job_desc_msg; ignored"
    assert descriptions["#/extra"] == "Field extra is not a field of Slurm's job_submit_req; ignored"


@pytest.mark.parametrize(("body", "status", "number", "source", "description_part"), [
    ([], 422, ESLURM_REST_INVALID_JOBS_DESC, "#/", "expected a JSON object"),
    ({"script": "x"}, 422, ESLURM_REST_INVALID_JOBS_DESC, "#/job", "is required"),
    ({"jobs": [{}, {}]}, 422, ESLURM_REST_INVALID_JOBS_DESC, "#/jobs", "heterogeneous"),
    (_job({"tasks": 5, "tasks_per_node": 2, "minimum_nodes": 2}), 422, ESLURM_REST_FAIL_PARSING, "#/job/tasks",
     "5 tasks is not tasks_per_node 2 x 2 nodes"),
    (_job({"nodes": "many"}), 422, ESLURM_REST_FAIL_PARSING, "#/job/nodes", "is not a node count"),
    (_job({"nodes": "4-2"}), 422, ESLURM_REST_FAIL_PARSING, "#/job/nodes", "maximum is below the minimum"),
    (_job({"tres_per_node": "gres/fpga:1"}), 422, ESLURM_REST_FAIL_PARSING, "#/job/tres_per_node", "only gres/gpu:N"),
    (_job({"tasks": 4, "tasks_per_node": 0}), 422, ESLURM_REST_FAIL_PARSING, "#/job/tasks_per_node",
     "greater than or equal to 1"),
    (_job({"memory_per_node": 1, "memory_per_cpu": 1}), 422, ESLURM_REST_FAIL_PARSING, "#/job/memory_per_cpu",
     "not both"),
    (_job({"memory_per_node": {"set": True, "infinite": True}}), 422, ESLURM_REST_FAIL_PARSING,
     "#/job/memory_per_node", "infinite is not supported"),
    (_job({"cpus_per_task": {"sett": True}}), 422, ESLURM_REST_FAIL_PARSING, "#/job/cpus_per_task", "unknown key"),
    (_job({"environment": ["NOEQUALS"]}), 422, ESLURM_REST_FAIL_PARSING, "#/job/environment", "not KEY=VALUE"),
    (_job({"argv": "-x"}), 422, ESLURM_REST_FAIL_PARSING, "#/job/argv", "list of strings"),
    (_job({}, script=5), 422, ESLURM_REST_FAIL_PARSING, "#/script", "expected a string"),
])
def test_bad_bodies_are_refused_naming_the_field(body: Any, status: int, number: int, source: str,
                                                 description_part: str) -> None:
    error = _refused(body)
    assert (error.status, error.error_number, error.source) == (status, number, source)
    assert description_part in error.description
