"""Issue 14 item 6: the keeper of an idle worker node is retired, so Ray may call the node idle.

On the session's Ray (head ``testnode``, partition ``main``) with one more node ``r1`` (4 CPUs,
partition ``batch``) and KEEPER_IDLE_TIMEOUT_S lowered to 3 s: r1's keeper stays while a job
runs there for longer than that, goes once r1 has had nothing to do for 3 s (Ray then reports r1
idle), while the head's keeper stays; a job submitted to ``batch`` afterwards makes r1's keeper
again and runs on r1.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from conductor import jobs, partitions
from conductor.keeper import handle as keeper_handle
from conductor.resources import NODE_NAME_LABEL
from conductor.service import JobService
from tests.helpers import ray_used_by_node, spec, wait_for

pytestmark = pytest.mark.ray

_GIB = 1024 ** 3
IDLE_TIMEOUT_S = 3.0
PARTITIONS = (partitions.parse("main", "Nodes=testnode Default=YES"), partitions.parse("batch", "Label=batch"))


@pytest.fixture(scope="module")
def worker_node(ray_local_cluster):  # noqa: ANN001, ANN201
    added = ray_local_cluster.add_node(num_cpus=4, memory=8 * _GIB, object_store_memory=80 * 1024 * 1024,
                                       node_name="r1", labels={NODE_NAME_LABEL: "r1", partitions.PARTITION_LABEL: "batch"})
    ray_local_cluster.wait_for_nodes()
    yield next(n["NodeID"] for n in ray.nodes() if n["Alive"] and (n.get("Labels") or {}).get(NODE_NAME_LABEL) == "r1")
    ray_local_cluster.remove_node(added)
    wait_for(lambda: sum(1 for n in ray.nodes() if n["Alive"]) == 1, 30, message="r1 gone")


def keepers(namespace: str) -> set[str]:
    return set(keeper_handle.names_in(namespace))


def ray_idle_ms(node_id: str) -> int:
    """How long Ray's GCS says the node has been idle (0: busy), as its autoscaler reads it."""
    from ray.autoscaler.v2.sdk import get_cluster_status

    status = get_cluster_status(ray.get_runtime_context().gcs_address)
    for node in status.active_nodes + status.idle_nodes:
        if node.node_id == node_id:
            return node.resource_usage.idle_time_ms if node in status.idle_nodes else 0
    raise AssertionError(f"Ray does not list node {node_id}")


def ended(service: JobService, job_id: int, timeout_s: float = 60) -> jobs.Job:
    return wait_for(lambda: (job := service.get(job_id)).state.is_terminal() and job, timeout_s,
                    message=f"job {job_id} to end")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["sqlite-embedded", "postgres-redis"])
def test_an_idle_worker_keeper_is_retired_the_head_keeper_stays_and_a_later_job_makes_it_again(
        backend: str, worker_node: str, settings_factory, scheduler_factory, tmp_path: Path) -> None:  # noqa: ANN001
    settings = settings_factory(backend, worker_concurrency=4, partitions=PARTITIONS,
                                keeper_idle_timeout_s=IDLE_TIMEOUT_S)
    service = JobService.from_settings(settings)
    scheduler_factory(settings)
    head_keeper, r1_keeper = keeper_handle.name_of("testnode"), keeper_handle.name_of("r1")
    wait_for(lambda: keepers(settings.ray_namespace) == {head_keeper, r1_keeper}, 60, message="both keepers")
    assert ray_idle_ms(worker_node) == 0, "r1 holding its keeper was idle for Ray: the retirement is not needed"

    # A job longer than the idle timeout: r1's keeper stays while it runs.
    first = service.submit(spec("#!/bin/bash\nsleep 6\n", partition="batch", working_dir=str(tmp_path))).id
    wait_for(lambda: service.get(first).state is jobs.JobState.RUNNING, 60, message="the first job to run")
    while service.get(first).state is jobs.JobState.RUNNING:
        assert r1_keeper in keepers(settings.ray_namespace), "r1's keeper was retired while its job ran"
        time.sleep(0.2)
    job = ended(service, first)
    assert (job.state, job.node_name) == (jobs.JobState.COMPLETED, "r1"), job
    ended_at = time.monotonic()

    wait_for(lambda: r1_keeper not in keepers(settings.ray_namespace), IDLE_TIMEOUT_S + 30, interval_s=0.2,
             message="r1's keeper to be retired")
    retired_after_s = time.monotonic() - ended_at
    print(f"r1's keeper retired {retired_after_s:.1f} s after its job ended")
    assert retired_after_s >= IDLE_TIMEOUT_S - 0.5, "retired before the node was idle for KEEPER_IDLE_TIMEOUT_S"
    # Ray now calls r1 idle (what lets its autoscaler stop it), and the head's keeper stays.
    wait_for(lambda: ray_idle_ms(worker_node) > 0, 30, interval_s=0.5, message="Ray to report r1 idle")
    time.sleep(2 * IDLE_TIMEOUT_S)
    assert keepers(settings.ray_namespace) == {head_keeper}, "the head's keeper was retired, or r1's came back unasked"

    # A job for r1's partition makes its keeper again and runs there.
    second = service.submit(spec("#!/bin/bash\necho on $SLURMD_NODENAME\n", partition="batch",
                                 working_dir=str(tmp_path))).id
    job = ended(service, second)
    assert (job.state, job.node_name, job.exit_code_text) == (jobs.JobState.COMPLETED, "r1", "0:0"), job
    assert r1_keeper in keepers(settings.ray_namespace)
    assert service.repository.unreleased_allocations() == []
    wait_for(lambda: all(u.cpus == 0 for u in ray_used_by_node().values()), 20, message="Ray's CPUs free again")
    service.close()
