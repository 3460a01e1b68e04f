"""The scheduler on a simulated multi-node cluster (``ray.cluster_utils.Cluster``).

The session's Ray head (32 CPUs, partition ``main``) gets three more nodes of different
sizes and labels for this module: ``b1`` (8 CPUs) and ``b2`` (4 CPUs) in partition
``batch``, ``g1`` (4 CPUs and a GPU) in partition ``gpu``.  Tests that remove a node add
their own.  Invariant 3 is checked on every node after each test, and sampled while the
node-failure test runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from conductor import hostlist, jobs, partitions
from conductor.exceptions import InvalidJobSpec
from conductor.resources import NODE_NAME_LABEL, Resources
from conductor.service import JobService
from tests.helpers import ray_used_by_node, spec, wait_for

pytestmark = pytest.mark.ray

_GIB = 1024 ** 3
PARTITIONS = (
    partitions.parse("main", "Nodes=testnode Default=YES"),
    partitions.parse("batch", "Label=batch DefaultTime=10:00"),
    partitions.parse("gpu", "Label=gpu"),
)


def _add(cluster, name: str, cpus: int, memory_gib: int, *, partition: str, gpus: int = 0):  # noqa: ANN001, ANN202
    return cluster.add_node(num_cpus=cpus, num_gpus=gpus, memory=memory_gib * _GIB,
                            object_store_memory=80 * 1024 * 1024, node_name=name,
                            labels={NODE_NAME_LABEL: name, partitions.PARTITION_LABEL: partition})


def _ray_id(name: str) -> str:
    return next(n["NodeID"] for n in ray.nodes() if n["Alive"] and (n.get("Labels") or {}).get(NODE_NAME_LABEL) == name)


@pytest.fixture(scope="module")
def three_nodes(ray_local_cluster):  # noqa: ANN001, ANN201
    added = [_add(ray_local_cluster, "b1", 8, 16, partition="batch"),
             _add(ray_local_cluster, "b2", 4, 8, partition="batch"),
             _add(ray_local_cluster, "g1", 4, 8, partition="gpu", gpus=1)]
    ray_local_cluster.wait_for_nodes()
    yield ray_local_cluster
    for node in added:
        ray_local_cluster.remove_node(node)
    wait_for(lambda: sum(1 for n in ray.nodes() if n["Alive"]) == 1, 30, message="the added nodes gone")


@pytest.fixture
def cluster_service(three_nodes, settings_factory, scheduler_factory):  # noqa: ANN001, ANN201
    settings = settings_factory("postgres-redis", worker_concurrency=16, partitions=PARTITIONS)
    service = JobService.from_settings(settings)
    scheduler_factory(settings)
    wait_for(lambda: len(service.repository.nodes()) >= 4, 20, message="the scheduler sees four nodes")
    yield service
    service.close()
    _check_invariant_3(service)


def _check_invariant_3(service: JobService) -> None:
    """At a quiet moment (nothing running): rows and Ray's usage per node are equal (all zero)."""
    wait_for(lambda: service.repository.unreleased_by_node() == {}, 30, message="every allocation released")
    wait_for(lambda: all(u.cpus == 0 and u.memory_mb == 0 for u in ray_used_by_node().values()), 30, message="Ray idle")


def _job(service: JobService, job_id: int) -> jobs.Job:
    return service.get(job_id)


def _running(service: JobService, job_id: int, timeout_s: float = 30) -> jobs.Job:
    return wait_for(lambda: (j := _job(service, job_id)).state is jobs.JobState.RUNNING and j, timeout_s,
                    message=f"job {job_id} RUNNING")


def _ended(service: JobService, job_id: int, timeout_s: float = 60) -> jobs.Job:
    return wait_for(lambda: (j := _job(service, job_id)).state.is_terminal() and j, timeout_s,
                    message=f"job {job_id} ended")


def _release(marker: Path) -> None:
    marker.touch()


def _waiter(marker: Path) -> str:
    """A script that runs until the test creates ``marker``."""
    return f"#!/bin/bash\nwhile [ ! -e {marker} ]; do sleep 0.05; done\n"


def test_jobs_run_only_on_nodes_of_their_partition_best_fit_first(cluster_service, tmp_path) -> None:
    service, done = cluster_service, tmp_path / "done"
    small = service.submit(spec(_waiter(done), partition="batch", cpus_per_task=4, working_dir=str(tmp_path)))
    big = service.submit(spec(_waiter(done), partition="batch", cpus_per_task=8, working_dir=str(tmp_path)))
    main = service.submit(spec(_waiter(done), working_dir=str(tmp_path)))  # no partition: the default, main
    assert (_running(service, small.id).node_name, _running(service, big.id).node_name) == ("b2", "b1")
    assert _running(service, main.id).node_name == "testnode" and _job(service, main.id).spec.partition == "main"
    wait_for(lambda: (ray_used_by_node()[_ray_id("b2")].cpus, ray_used_by_node()[_ray_id("b1")].cpus) == (4, 8), 10,
             message="Ray's usage equal to the rows on b1 and b2")
    assert service.repository.unreleased_by_node()[_ray_id("b1")] == Resources(8, 0)
    assert _job(service, small.id).spec.time_limit_s == 600  # the partition's DefaultTime
    _release(done)
    for job_id in (small.id, big.id, main.id):
        assert _ended(service, job_id).state is jobs.JobState.COMPLETED


def test_submit_refuses_unknown_partitions_and_jobs_no_node_of_the_partition_holds(cluster_service, tmp_path) -> None:
    service = cluster_service
    with pytest.raises(InvalidJobSpec) as unknown:
        service.submit(spec("true", partition="nope", working_dir=str(tmp_path)))
    assert unknown.value.field == "partition" and "known: batch, gpu, main" in unknown.value.reason
    with pytest.raises(InvalidJobSpec) as too_big:
        service.submit(spec("true", partition="batch", cpus_per_task=16, working_dir=str(tmp_path)))
    assert too_big.value.field == "cpus_per_task" and "largest node has 8" in too_big.value.reason
    with pytest.raises(InvalidJobSpec) as no_gpu:
        service.submit(spec("true", partition="batch", gpus_per_node=1, working_dir=str(tmp_path)))
    assert no_gpu.value.field == "gpus_per_node"
    with pytest.raises(InvalidJobSpec) as three:
        service.submit(spec("true", partition="batch", nodes=3, working_dir=str(tmp_path)))
    assert three.value.field == "nodes"


def test_a_gpu_job_gets_the_gpu_node_and_its_device(cluster_service, tmp_path) -> None:
    service = cluster_service
    script = "#!/bin/bash\necho \"gpus=$CUDA_VISIBLE_DEVICES slurm=$SLURM_JOB_GPUS\"\n"
    job = service.submit(spec(script, partition="gpu", gpus_per_node=1, working_dir=str(tmp_path)))
    ended = _ended(service, job.id)
    assert ended.state is jobs.JobState.COMPLETED and ended.node_name == "g1"
    assert Path(ended.stdout_path).read_text().strip() == "gpus=0 slurm=0"


def test_a_two_node_job_holds_both_nodes_at_once(cluster_service, tmp_path) -> None:
    service, done = cluster_service, tmp_path / "done"
    script = (f"#!/bin/bash\necho \"$SLURM_JOB_NODELIST $SLURM_NNODES $CONDUCTOR_JOB_NODELIST\"\n"
              f"while [ ! -e {done} ]; do sleep 0.05; done\n")
    job = service.submit(spec(script, partition="batch", nodes=2, cpus_per_task=4, memory_per_node_mb=1024,
                              working_dir=str(tmp_path)))
    running = _running(service, job.id)
    rows = {(node.name, a.per_node.cpus, a.per_node.memory_mb) for a in service.repository.unreleased_allocations()
            if a.job_id == job.id for node in a.nodes}
    assert rows == {("b1", 4, 1024), ("b2", 4, 1024)}
    assert running.node_name == "b2" and sorted(running.node_list.split(",")) == ["b1", "b2"]
    # Ray accounts the placement group's bundles on both nodes, as the rows say (invariant 3).
    wait_for(lambda: (ray_used_by_node()[_ray_id("b1")], ray_used_by_node()[_ray_id("b2")]) == (Resources(4, 1024),)
             * 2,
             10, message="Ray's usage equal to the rows on both nodes")
    _release(done)
    ended = _ended(service, job.id)
    assert ended.state is jobs.JobState.COMPLETED
    nodelist, nnodes, conductor_nodelist = Path(ended.stdout_path).read_text().split()
    # SLURM_JOB_NODELIST is a hostlist, as sbatch sets it; CONDUCTOR_JOB_NODELIST is comma-separated.
    assert hostlist.expand(nodelist) == ["b1", "b2"] and nnodes == "2"
    assert sorted(conductor_nodelist.split(",")) == ["b1", "b2"]


def test_a_joining_node_is_used_at_once(cluster_service, three_nodes, tmp_path) -> None:
    service, done = cluster_service, tmp_path / "done"
    fillers = [service.submit(spec(_waiter(done), partition="batch", cpus_per_task=cpus, working_dir=str(tmp_path)))
               for cpus in (8, 4)]
    for filler in fillers:
        _running(service, filler.id)
    waiting = service.submit(spec(_waiter(done), partition="batch", cpus_per_task=2, working_dir=str(tmp_path)))
    wait_for(lambda: _job(service, waiting.id).reason == jobs.Reason.RESOURCES, 10, message="waits for Resources")
    node = _add(three_nodes, "b3", 2, 4, partition="batch")
    try:
        joined = time.monotonic()
        assert _running(service, waiting.id, timeout_s=30).node_name == "b3"
        # The node list is read every 2 s; then the new node's keeper and the job's worker are each
        # a Python process that imports Ray, seconds apiece on a loaded 2-core machine (CI saw 11 s).
        assert time.monotonic() - joined < 20, "the pending job started soon after the node joined"
        _release(done)
        for job_id in [f.id for f in fillers] + [waiting.id]:
            assert _ended(service, job_id).state is jobs.JobState.COMPLETED
    finally:
        _release(done)
        three_nodes.remove_node(node)


def test_a_node_that_dies_ends_its_jobs_node_fail_and_requeues_those_that_allow_it(cluster_service, three_nodes,
                                                                                   tmp_path) -> None:
    service, done = cluster_service, tmp_path / "done"
    # Fill b1 and b2 so the next batch jobs land on a new batch node that then dies.
    fillers = [service.submit(spec(_waiter(done), partition="batch", cpus_per_task=cpus, working_dir=str(tmp_path)))
               for cpus in (8, 4)]
    for filler in fillers:
        _running(service, filler.id)
    victim = _add(three_nodes, "b9", 4, 8, partition="batch")
    keep = service.submit(spec(_waiter(done), partition="batch", cpus_per_task=2, working_dir=str(tmp_path)))
    lose = service.submit(spec(_waiter(done), partition="batch", cpus_per_task=2, requeue=False,
                               working_dir=str(tmp_path)))
    assert {_running(service, keep.id).node_name, _running(service, lose.id).node_name} == {"b9"}
    three_nodes.remove_node(victim, allow_graceful=False)  # kill -9 its raylet
    lost = _ended(service, lose.id, timeout_s=30)
    assert lost.state is jobs.JobState.NODE_FAIL and lost.reason is jobs.Reason.NODE_DOWN and "b9" in lost.reason_message
    requeued = wait_for(lambda: (j := _job(service, keep.id)).state is jobs.JobState.PENDING and j, 30,
                        message="the requeueable job back in the queue")
    assert requeued.restart_count == 1  # (its reason then becomes why it waits: Resources)
    assert not any(a.job_id in (keep.id, lose.id) for a in service.repository.unreleased_allocations())
    _release(done)  # the fillers end; the requeued job then runs on b1 or b2
    for filler in fillers:
        assert _ended(service, filler.id).state is jobs.JobState.COMPLETED
    again = _ended(service, keep.id)
    assert again.state is jobs.JobState.COMPLETED and again.node_name in ("b1", "b2")
