"""/api/nodes, /api/partitions and /api/queue: capacity and load from the database's own rows."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from conductor.resources import Allocation, Resources
from conductor.service import JobService
from tests.helpers import allocation, node, spec


def test_nodes_partitions_and_queue_summary(settings) -> None:
    service = JobService.from_settings(settings)
    service.repository.replace_nodes([
        node("n1", 32, 65536, 0, {}, ray_node_id="ray-n1"),
        node("g1", 8, 16384, 2, {"conductor.io/partition": "gpu"}, ray_node_id="ray-g1")])
    running = service.submit(spec("true", cpus_per_task=4, memory_per_node_mb=1024)).id
    service.repository.start_jobs([allocation(running, 4, 1024)])
    service.submit(spec("true", cpus_per_task=2))
    service.submit(spec("true", cpus_per_task=3, hold="user"))
    service.repository.set_pending_reasons({"Resources": [running + 1], "JobHeldUser": [running + 2]})
    with TestClient(create_app(settings, service=service)) as client:
        nodes = {n["name"]: n for n in client.get("/api/nodes").json()["nodes"]}
        assert nodes["n1"]["cpus"] == {"total": 32, "allocated": 4, "free": 28}
        assert nodes["n1"]["memory_mb"] == {"total": 65536, "allocated": 1024, "free": 64512}
        assert (nodes["g1"]["partition"], nodes["g1"]["gpus"], nodes["g1"]["state"]) == ("gpu", 2, "up")
        partitions = {p["name"]: p for p in client.get("/api/partitions").json()["partitions"]}
        assert partitions["default"]["nodes"] == ["n1"] and partitions["gpu"]["nodes"] == ["g1"]
        assert partitions["default"]["cpus"]["free"] == 28
        assert (partitions["default"]["running_jobs"], partitions["default"]["pending_jobs"]) == (1, 2)
        summary = client.get("/api/queue").json()
        assert summary == {"pending_jobs": 2, "running_jobs": 1, "pending_cpus": 5, "running_cpus": 4,
                           "pending_by_reason": {"Resources": 1, "JobHeldUser": 1}}
        service.repository.replace_nodes([node("n1", 32, 65536, 0, {}, ray_node_id="ray-n1")])
        assert {n["name"]: n["state"] for n in client.get("/api/nodes").json()["nodes"]} == {"g1": "down",
                                                                                              "n1": "up"}
        assert [p["name"] for p in client.get("/api/partitions").json()["partitions"]] == ["default"]
    service.close()


def test_cpus_of_multi_node_jobs_count_on_every_node(settings) -> None:
    """-N 2 -c 3: 6 CPUs in /api/queue (pending and running) and in the job's own cpus."""
    service = JobService.from_settings(settings)
    b1, b2 = node("b1", 8, 8192), node("b2", 8, 8192)
    service.repository.replace_nodes([b1, b2])
    running = service.submit(spec("true", cpus_per_task=3, nodes=2)).id
    service.repository.start_jobs([Allocation(running, (b1, b2), Resources(3, 0))])
    service.submit(spec("true", cpus_per_task=2, ntasks_per_node=2, nodes=2))
    with TestClient(create_app(settings, service=service)) as client:
        summary = client.get("/api/queue").json()
        assert (summary["running_cpus"], summary["pending_cpus"]) == (6, 8)
        assert client.get(f"/api/jobs/{running}").json()["cpus"] == 6
        nodes = {n["name"]: n["cpus"]["allocated"] for n in client.get("/api/nodes").json()["nodes"]}
        assert nodes == {"b1": 3, "b2": 3}
    service.close()


def test_configured_partitions_show_their_nodes_limits_and_refuse_what_they_do_not_allow(settings) -> None:
    from conductor import partitions

    configured = settings.model_copy(update={"partitions": (
        partitions.parse("batch", "Nodes=ALL Default=YES DefaultTime=1:00:00 MaxTime=2:00:00 MaxCPUsPerJob=16"),
        partitions.parse("gpu", "Label=gpu PriorityJobFactor=10"),
        partitions.parse("maint", "Nodes=n9 State=DOWN"))})
    service = JobService.from_settings(configured)
    service.repository.replace_nodes([
        node("n1", 32, 65536, 0, {}, ray_node_id="ray-n1"),
        node("g1", 8, 16384, 2, {"conductor.io/partition": "gpu"}, ray_node_id="ray-g1")])
    with TestClient(create_app(configured, service=service)) as client:
        found = {p["name"]: p for p in client.get("/api/partitions").json()["partitions"]}
        assert (found["batch"]["nodes"], found["batch"]["default"], found["batch"]["max_time_s"]) == (
            ["g1", "n1"], True, 7200)
        assert (found["gpu"]["nodes"], found["gpu"]["gpus"], found["gpu"]["covers"]) == (
            ["g1"], 2, "label conductor.io/partition=gpu")
        assert (found["maint"]["state"], found["maint"]["nodes"]) == ("down", [])

        def submit(**job: object) -> dict:
            body = {"job": {"current_working_directory": "/tmp", **job}, "script": "#!/bin/bash\ntrue\n"}
            return client.post("/api/jobs/submit", json=body)

        accepted = submit(cpus_per_task=2)
        assert accepted.status_code == 200, accepted.text
        job = accepted.json()["job"]
        assert (job["partition"], job["time_limit_s"]) == ("batch", 3600)  # the default and its DefaultTime
        for fields, field, words in (
                ({"partition": "nope"}, "partition", "'nope' is not a partition (known: batch, gpu, maint)"),
                ({"time_limit": "3:00:00"}, "time_limit", "exceeds the MaxTime of partition batch"),
                ({"cpus_per_task": 17}, "cpus_per_task", "allows 16 per job"),
                ({"partition": "gpu", "gpus_per_node": 3}, "gpus_per_node", "largest node of partition gpu has 2"),
                ({"partition": "gpu", "nodes": 2}, "nodes", "needs 2 nodes")):
            refused = submit(**fields)
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert error["fields"][0]["field"].endswith(field) and words in error["message"], error
        assert len(client.get("/api/jobs").json()["jobs"]) == 1  # nothing of the refused ones was stored
    service.close()
