"""conductor.environment: sbatch's OUTPUT ENVIRONMENT VARIABLES, each set exactly when sbatch sets it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from conductor import hostlist
from conductor.jobs import Job, JobSpec, JobState, Reason, job_environment
from conductor.resources import Resources

SUBMITTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
BASE = JobSpec(script="#!/bin/bash\ntrue\n", name="train", user="alice", partition="batch", working_dir="/w",
               cluster="vmc", environment={"SLURM_SUBMIT_DIR": "/home/alice", "SLURM_SUBMIT_HOST": "login1",
                                           "SLURM_PRIO_PROCESS": "0", "MINE": "kept"})


def _env(restart_count: int = 0, node_list: tuple[str, ...] = (), per_node: Resources | None = None,
         **fields: object) -> dict[str, str]:
    job = Job(id=7, spec=replace(BASE, **fields), state=JobState.RUNNING, reason=Reason.NONE,
              submit_time=SUBMITTED, restart_count=restart_count)
    return job_environment(job, node_name=(node_list or ("vm",))[0], node_list=node_list, per_node=per_node)


#: (variable, expected value) of a plain job: sbatch sets these for every batch job.
ALWAYS = [
    ("SLURM_JOB_ID", "7"), ("SLURM_JOBID", "7"), ("SLURM_JOB_NAME", "train"), ("SLURM_JOB_NODELIST", "vm"),
    ("SLURM_NODELIST", "vm"), ("SLURM_JOB_NUM_NODES", "1"), ("SLURM_NNODES", "1"), ("SLURM_JOB_PARTITION", "batch"),
    ("SLURM_JOB_CPUS_PER_NODE", "1"), ("SLURM_TASKS_PER_NODE", "1"), ("SLURM_CPUS_ON_NODE", "1"),
    ("SLURM_JOB_USER", "alice"), ("SLURM_CLUSTER_NAME", "vmc"), ("SLURM_PROCID", "0"), ("SLURM_LOCALID", "0"),
    ("SLURM_NODEID", "0"), ("SLURM_GTIDS", "0"), ("SLURMD_NODENAME", "vm"), ("SLURM_TOPOLOGY_ADDR", "vm"),
    ("SLURM_TOPOLOGY_ADDR_PATTERN", "node"), ("SLURM_NODE_ALIASES", "(null)"), ("ENVIRONMENT", "BATCH"),
    # set by sbatch into the job's environment at submit, and kept
    ("SLURM_SUBMIT_DIR", "/home/alice"), ("SLURM_SUBMIT_HOST", "login1"), ("SLURM_PRIO_PROCESS", "0"),
    ("MINE", "kept"),
]

#: Set only when their option was given: absent from a plain job.
CONDITIONAL = ["SLURM_NTASKS", "SLURM_NPROCS", "SLURM_NTASKS_PER_NODE", "SLURM_CPUS_PER_TASK", "SLURM_MEM_PER_NODE",
               "SLURM_MEM_PER_CPU", "SLURM_GPUS", "SLURM_GPUS_PER_NODE", "SLURM_GPUS_ON_NODE", "SLURM_JOB_ACCOUNT",
               "SLURM_JOB_DEPENDENCY", "SLURM_EXPORT_ENV", "SLURM_GET_USER_ENV", "SLURM_OPEN_MODE",
               "SLURM_RESTART_COUNT", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
               "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP",
               # never in a 22.05 batch shell
               "SLURM_STEP_ID", "SLURM_STEPID", "SLURM_JOB_QOS", "SLURM_JOB_RESERVATION"]


@pytest.mark.parametrize(("name", "value"), ALWAYS)
def test_set_for_every_batch_job(name: str, value: str) -> None:
    assert _env()[name] == value


@pytest.mark.parametrize("name", CONDITIONAL)
def test_absent_unless_its_option_was_given(name: str) -> None:
    assert name not in _env()


@pytest.mark.parametrize(("fields", "expected"), [
    # -c 4
    ({"cpus_per_task": 4, "given": frozenset({"cpus_per_task"})}, {"SLURM_CPUS_PER_TASK": "4",
                                                                   "SLURM_CPUS_ON_NODE": "4"}),
    # -c 4 given by the API's default only (not given): no SLURM_CPUS_PER_TASK
    ({"cpus_per_task": 4}, {"SLURM_CPUS_PER_TASK": None, "SLURM_CPUS_ON_NODE": "4"}),
    # -n 3
    ({"ntasks": 3, "ntasks_per_node": 3}, {"SLURM_NTASKS": "3", "SLURM_NPROCS": "3", "SLURM_NTASKS_PER_NODE": None,
                                           "SLURM_TASKS_PER_NODE": "3"}),
    # --ntasks-per-node=2 alone: NTASKS too (seen on 22.05)
    ({"ntasks_per_node": 2, "given": frozenset({"ntasks_per_node"})},
     {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2"}),
    # --mem=100
    ({"memory_per_node_mb": 100, "given": frozenset({"memory_per_node"})},
     {"SLURM_MEM_PER_NODE": "100", "SLURM_MEM_PER_CPU": None}),
    # a default memory (DefMemPerCPU), not given
    ({"memory_per_node_mb": 100}, {"SLURM_MEM_PER_NODE": None}),
    # --mem-per-cpu=50
    ({"memory_per_node_mb": 100, "memory_per_cpu_mb": 50}, {"SLURM_MEM_PER_CPU": "50", "SLURM_MEM_PER_NODE": None}),
    # -G 2 / --gpus-per-node=1 / --gres=gpu:1
    ({"gpus_per_node": 2, "given": frozenset({"gpus"})}, {"SLURM_GPUS": "2", "SLURM_GPUS_ON_NODE": "2",
                                                          "SLURM_GPUS_PER_NODE": None}),
    ({"gpus_per_node": 1, "given": frozenset({"gpus_per_node"})}, {"SLURM_GPUS_PER_NODE": "1", "SLURM_GPUS": None,
                                                                   "SLURM_GPUS_ON_NODE": "1"}),
    ({"gpus_per_node": 1}, {"SLURM_GPUS_ON_NODE": "1", "SLURM_GPUS": None, "SLURM_GPUS_PER_NODE": None}),
    # -A physics
    ({"account": "physics"}, {"SLURM_JOB_ACCOUNT": "physics"}),
    # -d afterok:5 (as given)
    ({"dependency": "afterok:5"}, {"SLURM_JOB_DEPENDENCY": "afterok:5"}),
    # --export
    ({"export": "ALL"}, {"SLURM_EXPORT_ENV": "ALL", "SLURM_GET_USER_ENV": None}),
    ({"export": "NONE"}, {"SLURM_EXPORT_ENV": "NONE", "SLURM_GET_USER_ENV": "1"}),
    ({"export": "ALL,FOO=bar"}, {"SLURM_EXPORT_ENV": "ALL,FOO=bar", "SLURM_GET_USER_ENV": "1"}),
    # --get-user-env
    ({"get_user_env": True}, {"SLURM_GET_USER_ENV": "1", "SLURM_EXPORT_ENV": None}),
    # --open-mode
    ({"open_mode": "append"}, {"SLURM_OPEN_MODE": "a"}),
    ({"open_mode": "truncate"}, {"SLURM_OPEN_MODE": "t"}),
    # an array task: 3_1 of --array=1-3 has its own job id
    ({"array_job_id": 3, "array_task_id": 1, "array_spec": "1-3"},
     {"SLURM_ARRAY_JOB_ID": "3", "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3",
      "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "3", "SLURM_ARRAY_TASK_STEP": "1", "SLURM_JOB_ID": "7"}),
    ({"array_job_id": 3, "array_task_id": 4, "array_spec": "0-12:4%2"},
     {"SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "12",
      "SLURM_ARRAY_TASK_STEP": "4"}),
    ({"array_job_id": 3, "array_task_id": 5, "array_spec": "1,2,5"},
     {"SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "1"}),
    # no cluster recorded (a job stored before CLUSTER_NAME existed)
    ({"cluster": ""}, {"SLURM_CLUSTER_NAME": None}),
    # a REST client sent no SLURM_SUBMIT_DIR: the working directory
    ({"environment": {}}, {"SLURM_SUBMIT_DIR": "/w", "SLURM_SUBMIT_HOST": None}),
    ({"environment": {}, "submit_host": "api1"}, {"SLURM_SUBMIT_HOST": "api1"}),
])
def test_each_option_sets_its_variables(fields: dict, expected: dict) -> None:
    env = _env(**fields)
    for name, value in expected.items():
        assert env.get(name) == value, name


def test_restart_count_only_after_a_requeue() -> None:
    assert "SLURM_RESTART_COUNT" not in _env(restart_count=0)
    assert _env(restart_count=2)["SLURM_RESTART_COUNT"] == "2"


def test_multi_node_values_are_hostlists_and_run_lengths() -> None:
    env = _env(node_list=("n01", "n02", "n03"), nodes=3, cpus_per_task=2, ntasks_per_node=2, ntasks=6)
    assert (env["SLURM_JOB_NODELIST"], env["SLURM_NODELIST"]) == ("n[01-03]", "n[01-03]")
    assert (env["SLURM_JOB_NUM_NODES"], env["SLURMD_NODENAME"], env["SLURM_NODEID"]) == ("3", "n01", "0")
    assert (env["SLURM_JOB_CPUS_PER_NODE"], env["SLURM_TASKS_PER_NODE"]) == ("4(x3)", "2(x3)")
    assert (env["SLURM_CPUS_ON_NODE"], env["SLURM_NTASKS"]) == ("4", "6")


def test_an_exclusive_job_holds_the_whole_node() -> None:
    env = _env(exclusive=True, per_node=Resources(16, 0, 0))
    assert (env["SLURM_CPUS_ON_NODE"], env["SLURM_JOB_CPUS_PER_NODE"]) == ("16", "16")


def test_slurm_values_override_what_the_submitter_exported_but_keep_its_own() -> None:
    env = _env(environment={"SLURM_JOB_ID": "999", "SLURM_JOB_NAME": "outer", "KEEP": "yes"})
    assert (env["SLURM_JOB_ID"], env["SLURM_JOB_NAME"], env["KEEP"]) == ("7", "train", "yes")


@pytest.mark.parametrize(("text", "names"), [
    ("vm", ["vm"]), ("node[01-03],gpu[1,5-6]", ["node01", "node02", "node03", "gpu1", "gpu5", "gpu6"]),
    ("a1,a2", ["a1", "a2"]), ("n[8-11]", ["n8", "n9", "n10", "n11"]), ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
])
def test_hostlist_expand(text: str, names: list[str]) -> None:
    assert hostlist.expand(text) == names


@pytest.mark.parametrize(("names", "text"), [
    (["vm"], "vm"), (["a1", "a2", "a3"], "a[1-3]"), (["n01", "n02", "n04", "x"], "n[01-02,04],x"),
    (["b2", "b1"], "b[1-2]"),
])
def test_hostlist_compress(names: list[str], text: str) -> None:
    assert hostlist.compress(names) == text


def test_hostlist_refuses_unbalanced_brackets() -> None:
    with pytest.raises(ValueError):
        hostlist.expand("n[1-2")
