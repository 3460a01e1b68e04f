"""Workflow tools that drive Slurm run unchanged against a real ``conductor up`` with Slurm's commands on
PATH: submitit, dask-jobqueue, and Snakemake 9 with its Slurm executor.  Each test checks what the
tool got back."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from tests.acceptance.slurm_up import SlurmUp, start
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmUp]:
    yield from start(tmp_path_factory.mktemp("workflow-tools"), namespace="acceptance-tools")


def _tool(module: str) -> None:
    """The tool's package (the test extras install it): skips without it, and fails in CI."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed: {exc}")
        pytest.skip(f"{module} is not installed")


def _python(slurm: SlurmUp, code: str, cwd: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the commands on PATH, as a user's script would."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=slurm.env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout_s)


def test_submitit_runs_a_function_and_an_array(slurm: SlurmUp, tmp_path: Path) -> None:
    _tool("submitit")
    result = _python(slurm, f"""
        import submitit

        def add(a, b):
            import os
            return a + b, os.environ["SLURM_JOB_ID"]

        executor = submitit.AutoExecutor(folder={str(tmp_path / 'logs')!r}, cluster="slurm")
        executor.update_parameters(timeout_min=5, slurm_partition="default", cpus_per_task=1, mem_gb=1)
        job = executor.submit(add, 2, 3)
        value, job_id = job.result()
        assert job_id == job.job_id, (job_id, job.job_id)
        print("single", value, job.job_id)
        jobs = executor.map_array(lambda x: x * x, [1, 2, 3])
        print("array", [j.result() for j in jobs], " ".join(j.job_id for j in jobs))
        """, tmp_path, 240)
    assert result.returncode == 0, result.stdout + result.stderr
    single, array = result.stdout.splitlines()
    assert single.startswith("single 5 ")
    assert array.startswith("array [1, 4, 9] ")
    task_ids = array.split("] ")[1].split()
    base = task_ids[0].split("_")[0]
    assert task_ids == [f"{base}_0", f"{base}_1", f"{base}_2"]  # one array, its tasks named ID_N
    job_id = single.split()[2]
    ended = wait_for(lambda: (lambda out: out if "RUNNING" not in out and "PENDING" not in out else None)(
        slurm.run("sacct", "-X", "-n", "-P", "--format=JobID,State", "-j", f"{job_id},{base}").stdout), 60,
        interval_s=0.5)
    assert ended.split() == [f"{job_id}|COMPLETED", *(f"{task}|COMPLETED" for task in task_ids)]


def test_dask_jobqueue_scales_to_two_workers_and_sums(slurm: SlurmUp, tmp_path: Path) -> None:
    _tool("dask_jobqueue")
    result = _python(slurm, """
        from dask.distributed import Client
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(cores=1, processes=1, memory="1GB", queue="default", walltime="00:05:00",
                               interface="lo", log_directory="logs")
        cluster.scale(2)
        client = Client(cluster)
        client.wait_for_workers(2, timeout=150)
        workers = client.scheduler_info()["workers"]
        total = client.submit(sum, client.map(lambda x: x + 1, range(10))).result()
        hosts = client.run(lambda: __import__("os").environ["SLURM_JOB_ID"])
        print("workers", len(workers), "sum", total, "jobs", len(set(hosts.values())))
        cluster.close()
        """, tmp_path, 240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "workers 2 sum 55 jobs 2"


SNAKEFILE = """
rule all:
    input: "c.txt"

rule a:
    output: "a.txt"
    shell: "echo a:$SLURM_JOB_ID > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    shell: "cat {input} > {output}; echo b:$SLURM_JOB_ID >> {output}"

rule c:
    input: "b.txt"
    output: "c.txt"
    shell: "cat {input} > {output}; echo c:$SLURM_JOB_ID >> {output}"
"""


def test_snakemake_runs_a_three_rule_workflow_through_the_slurm_executor(slurm: SlurmUp, tmp_path: Path) -> None:
    _tool("snakemake_executor_plugin_slurm")
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    result = subprocess.run(
        [snakemake, "--executor", "slurm", "--jobs", "3", "--latency-wait", "5",
         # no account: the executor would check one with sacctmgr/sshare, which conductor does not provide
         "--slurm-no-account", "--default-resources", "slurm_partition=default", "runtime=5", "mem_mb=1000",
         "--slurm-init-seconds-before-status-checks", "1"],
        env={**slurm.env, "HOME": str(tmp_path)}, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    lines = (tmp_path / "c.txt").read_text().split()
    assert [line.split(":")[0] for line in lines] == ["a", "b", "c"]
    job_ids = [line.split(":")[1] for line in lines]
    assert len(set(job_ids)) == 3 and all(job_id.isdigit() for job_id in job_ids)  # one Slurm job per rule
    states = slurm.run("sacct", "-X", "-n", "-P", "--format=JobID,State", "-j", ",".join(job_ids)).stdout.split()
    assert states == [f"{job_id}|COMPLETED" for job_id in job_ids]


