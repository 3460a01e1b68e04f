"""A batch job's environment: the job's own variables plus sbatch's SLURM_* and conductor's CONDUCTOR_*.

Pure: everything comes from the job and where it was placed.  sbatch's "OUTPUT ENVIRONMENT
VARIABLES" (man sbatch, Slurm 22.05), variable by variable:

* set for every batch job: SLURM_JOB_ID/JOBID, JOB_NAME, JOB_NODELIST/NODELIST (a hostlist),
  JOB_NUM_NODES/NNODES, JOB_PARTITION, JOB_CPUS_PER_NODE and TASKS_PER_NODE (run-length,
  ``2(x3)``), CPUS_ON_NODE, JOB_USER, CLUSTER_NAME, the batch shell as task 0 on node 0
  (PROCID, LOCALID, NODEID, GTIDS), SLURMD_NODENAME, TOPOLOGY_ADDR(_PATTERN), NODE_ALIASES,
  and ENVIRONMENT=BATCH, as slurmd adds it;
* set only when the option was given (scripts test for them): NTASKS/NPROCS (-n or
  --ntasks-per-node), NTASKS_PER_NODE, CPUS_PER_TASK (-c), MEM_PER_NODE (--mem),
  MEM_PER_CPU (--mem-per-cpu), GPUS (-G), GPUS_PER_NODE, JOB_DEPENDENCY (-d), EXPORT_ENV
  and GET_USER_ENV (--export, --get-user-env), OPEN_MODE, JOB_ACCOUNT (an account);
  arrays: ARRAY_JOB_ID, ARRAY_TASK_ID, _COUNT, _MIN, _MAX, _STEP; RESTART_COUNT after a requeue;
  GPUS_ON_NODE when the job holds GPUs;
* set at submit by sbatch into the job's own environment, and kept from there:
  SUBMIT_DIR, SUBMIT_HOST, PRIO_PROCESS (for a REST client: the working directory and the API's
  host);
* set by the executor, which alone knows them: TASK_PID (the batch shell's pid), JOB_UID and
  JOB_GID (the user the job runs as), JOB_GPUS and CUDA_VISIBLE_DEVICES (the GPUs Ray gave).

Not set, because nothing here gives them a meaning: QOS, RESERVATION, HET_*, DISTRIBUTION,
OVERCOMMIT, THREADS_PER_CORE, PROFILE, CONTAINER, MEM_BIND, GPU_BIND/FREQ, NTASKS_PER_CORE/
SOCKET/GPU, CPUS_PER_GPU, MEM_PER_GPU, SHARDS_ON_NODE.
"""

from __future__ import annotations

from typing import Sequence

from conductor import arrays, hostlist
from conductor.jobs import Job, JobSpec
from conductor.resources import Resources


def batch_environment(job: Job, *, node_name: str, node_list: Sequence[str] = (),
                      per_node: Resources | None = None) -> dict[str, str]:
    """The environment of ``job``'s batch shell on ``node_name`` (the first of ``node_list``)."""
    spec = job.spec
    nodes = list(node_list) or [node_name]
    held = per_node or spec.per_node
    env = dict(spec.environment)
    env.update({f"CONDUCTOR_{key}": value for key, value in _conductor_values(job, nodes, held).items()})
    env.update(_always(job, nodes, node_name, held))
    env.update(_when_given(spec, len(nodes)))
    env.update(_array(spec))
    if job.restart_count:
        env["SLURM_RESTART_COUNT"] = str(job.restart_count)
    if held.gpus:
        env["SLURM_GPUS_ON_NODE"] = str(held.gpus)
    env.setdefault("SLURM_SUBMIT_DIR", spec.working_dir)
    if spec.submit_host:
        env.setdefault("SLURM_SUBMIT_HOST", spec.submit_host)
    return env


def _always(job: Job, nodes: list[str], node_name: str, held: Resources) -> dict[str, str]:
    spec = job.spec
    values = {
        "SLURM_JOB_ID": str(job.id), "SLURM_JOBID": str(job.id), "SLURM_JOB_NAME": spec.name,
        "SLURM_JOB_NODELIST": hostlist.compress(nodes), "SLURM_NODELIST": hostlist.compress(nodes),
        "SLURM_JOB_NUM_NODES": str(len(nodes)), "SLURM_NNODES": str(len(nodes)),
        "SLURM_JOB_PARTITION": spec.partition,
        "SLURM_JOB_CPUS_PER_NODE": hostlist.run_length([held.cpus] * len(nodes)),
        "SLURM_TASKS_PER_NODE": hostlist.run_length([spec.ntasks_per_node] * len(nodes)),
        "SLURM_CPUS_ON_NODE": str(held.cpus), "SLURM_JOB_USER": spec.user,
        # The batch shell is task 0 of the job, on its first node.
        "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_GTIDS": "0",
        "SLURMD_NODENAME": node_name, "SLURM_TOPOLOGY_ADDR": node_name, "SLURM_TOPOLOGY_ADDR_PATTERN": "node",
        "SLURM_NODE_ALIASES": "(null)", "ENVIRONMENT": "BATCH",
    }
    if spec.cluster:
        values["SLURM_CLUSTER_NAME"] = spec.cluster
    if spec.account:
        values["SLURM_JOB_ACCOUNT"] = spec.account
    return values


def _when_given(spec: JobSpec, node_count: int) -> dict[str, str]:
    """The variables sbatch sets only when their option was given."""
    values: dict[str, str] = {}
    given = spec.given
    if spec.ntasks is not None or "ntasks_per_node" in given:
        tasks = spec.ntasks if spec.ntasks is not None else spec.ntasks_per_node * node_count
        values["SLURM_NTASKS"] = values["SLURM_NPROCS"] = str(tasks)
    if "ntasks_per_node" in given:
        values["SLURM_NTASKS_PER_NODE"] = str(spec.ntasks_per_node)
    if "cpus_per_task" in given:
        values["SLURM_CPUS_PER_TASK"] = str(spec.cpus_per_task)
    if spec.memory_per_cpu_mb is not None:
        values["SLURM_MEM_PER_CPU"] = str(spec.memory_per_cpu_mb)
    elif "memory_per_node" in given:
        values["SLURM_MEM_PER_NODE"] = str(spec.memory_per_node_mb)
    if "gpus" in given:
        values["SLURM_GPUS"] = str(spec.gpus_per_node * node_count)
    if "gpus_per_node" in given:
        values["SLURM_GPUS_PER_NODE"] = str(spec.gpus_per_node)
    if spec.dependency:
        values["SLURM_JOB_DEPENDENCY"] = spec.dependency  # as given
    if spec.export is not None:
        values["SLURM_EXPORT_ENV"] = spec.export
    # sbatch turns on get-user-env for any --export but plain ALL (seen on 22.05: NONE, ALL,FOO=bar).
    if spec.get_user_env or (spec.export is not None and spec.export.strip().upper() != "ALL"):
        values["SLURM_GET_USER_ENV"] = "1"
    if spec.open_mode:
        values["SLURM_OPEN_MODE"] = spec.open_mode[0]
    return values


def _array(spec: JobSpec) -> dict[str, str]:
    if spec.array_job_id is None or spec.array_task_id is None:
        return {}
    indexes = arrays.parse(spec.array_spec).indexes if spec.array_spec else (spec.array_task_id,)
    return {"SLURM_ARRAY_JOB_ID": str(spec.array_job_id), "SLURM_ARRAY_TASK_ID": str(spec.array_task_id),
            "SLURM_ARRAY_TASK_COUNT": str(len(indexes)), "SLURM_ARRAY_TASK_MIN": str(indexes[0]),
            "SLURM_ARRAY_TASK_MAX": str(indexes[-1]), "SLURM_ARRAY_TASK_STEP": str(_step(indexes))}


def _step(indexes: Sequence[int]) -> int:
    """The array's index step: the common difference of its indexes, else 1 (a list like 1,2,5)."""
    steps = {b - a for a, b in zip(indexes, indexes[1:])}
    return steps.pop() if len(steps) == 1 else 1


def _conductor_values(job: Job, nodes: list[str], held: Resources) -> dict[str, str]:
    """conductor's own names, always set (CONDUCTOR_JOB_ID also marks the job's processes)."""
    spec = job.spec
    values = {
        "JOB_ID": str(job.id), "JOB_NAME": spec.name, "JOB_USER": spec.user, "JOB_ACCOUNT": spec.account,
        "JOB_PARTITION": spec.partition, "JOB_NODELIST": ",".join(nodes), "JOB_NUM_NODES": str(len(nodes)),
        "NNODES": str(len(nodes)), "CPUS_PER_TASK": str(spec.cpus_per_task),
        "NTASKS_PER_NODE": str(spec.ntasks_per_node), "NTASKS": str(spec.ntasks_per_node * len(nodes)),
        "CPUS_ON_NODE": str(held.cpus), "MEM_PER_NODE": str(spec.memory_per_node_mb),
        "SUBMIT_DIR": spec.environment.get("SLURM_SUBMIT_DIR", spec.working_dir),
        "RESTART_COUNT": str(job.restart_count),
    }
    if held.gpus:
        values["GPUS_ON_NODE"] = str(held.gpus)
    if spec.array_job_id is not None and spec.array_task_id is not None:
        values.update(ARRAY_JOB_ID=str(spec.array_job_id), ARRAY_TASK_ID=str(spec.array_task_id))
    return values
