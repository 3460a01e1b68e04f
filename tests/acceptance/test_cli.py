"""The ``conductor`` command as a user runs it: ``up`` on the embedded default, ``submit``, ``show``, ``worker``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conductor import jobs
from conductor.config import Settings
from conductor.service import JobService
from tests.helpers import conductor_up, free_port, spec, wait_for

CONDUCTOR = str(Path(sys.executable).with_name("conductor"))


def _env(**values: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update({f"CONDUCTOR_{k}": str(v) for k, v in values.items()})
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CONDUCTOR, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def service_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``conductor up`` on the embedded default (SQLite, embedded queue, a Ray it starts itself)."""
    state = tmp_path_factory.mktemp("up-state")
    port = free_port()
    env = _env(STATE_DIR=state, API_PORT=port, RAY_DASHBOARD_PORT=free_port(), TOTAL_CPUS=8,
               TOTAL_MEMORY="16G", RAY_NAMESPACE="acceptance-up", KILL_WAIT_S=2, NODE_NAME="upnode")
    env.pop("RAY_ADDRESS", None)
    with conductor_up(env, state, port) as (url, process):
        yield {"url": url, "env": env, "state": state, "process": process}


def _show(service_up: dict, job_id: int, cwd: Path) -> dict:
    result = _run(["show", str(job_id), "--json"], {**service_up["env"], "CONDUCTOR_URL": service_up["url"]}, cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_up_prints_the_banner(service_up: dict) -> None:
    banner = (service_up["state"] / "up.log").read_text()
    for line in ("Node name:           upnode", "Total CPUs:          8", "Worker concurrency:  4",
                 "Ray dashboard:       http://127.0.0.1:"):
        assert line in banner, banner


def test_ready_reports_database_queue_and_ray(service_up: dict) -> None:
    response = httpx.get(f"{service_up['url']}/api/ready", timeout=10)
    assert response.status_code == 200, response.text
    components = response.json()["components"]
    assert components["database"] == components["queue"] == "ok"
    assert components["ray"].startswith("ok: 1 node(s)")


def test_submit_runs_a_script_with_cpus_and_memory(service_up: dict, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\necho \"cpus=$SLURM_CPUS_PER_TASK mem=$SLURM_MEM_PER_NODE "
                      "name=$SLURM_JOB_NAME from=$SUBMITTER_VAR\"\n")
    env = {**service_up["env"], "CONDUCTOR_URL": service_up["url"], "SUBMITTER_VAR": "exported"}
    result = _run(["submit", "job.sh", "-c", "4", "--mem", "8G"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Submitted batch job ")
    job_id = int(result.stdout.split()[-1])
    job = wait_for(lambda: (j := _show(service_up, job_id, tmp_path))["state"] == "COMPLETED" and j, 30)
    assert (job["cpus"], job["memory_per_node_mb"], job["node"]) == (4, 8192, "upnode")
    assert (tmp_path / f"slurm-{job_id}.out").read_text() == "cpus=4 mem=8192 name=job.sh from=exported\n"


def test_submit_refusals_are_one_line_and_non_zero(service_up: dict, tmp_path: Path) -> None:
    (tmp_path / "job.sh").write_text("#!/bin/bash\ntrue\n")
    env = {**service_up["env"], "CONDUCTOR_URL": service_up["url"]}
    too_big = _run(["submit", "job.sh", "-c", "9"], env, tmp_path)
    assert too_big.returncode != 0
    assert too_big.stderr.strip().splitlines() == [
        "conductor: error: job.cpus_per_task: the job needs 9 CPUs (cpus_per_task 9 x ntasks_per_node 1) "
        "but the largest node has 8"]
    bad_mem = _run(["submit", "job.sh", "--mem", "8X"], env, tmp_path)
    assert bad_mem.returncode != 0 and bad_mem.stderr.startswith("conductor: error: --mem:")
    unreachable = _run(["submit", "job.sh"], {**env, "CONDUCTOR_URL": f"http://127.0.0.1:{free_port()}"}, tmp_path)
    assert unreachable.returncode != 0 and "cannot reach the conductor API" in unreachable.stderr
    assert "Traceback" not in too_big.stderr + bad_mem.stderr + unreachable.stderr


def test_bad_configuration_stops_start_up_naming_key_value_and_line(tmp_path: Path) -> None:
    config = tmp_path / "app.properties"
    for value in ("0", "-1", "four"):
        config.write_text(f"# workers\nWORKER_CONCURRENCY={value}  # 启动 4 个 Worker 进程\n")
        result = _run(["--config", str(config), "worker"], _env(), tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith(f"conductor: error: {config}:2: WORKER_CONCURRENCY='{value}' is invalid")
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.ray
def test_burst_worker_runs_the_queue_and_exits(ray_cluster: str, tmp_path: Path) -> None:
    """WORKER_BURST=true attached to a running Ray: runs what is queued, then exits 0."""
    state = tmp_path / "state"
    settings = Settings(state_dir=state, ray_namespace="acceptance-burst")
    service = JobService.from_settings(settings)
    ids = [service.submit(spec("sleep 0.3", working_dir=str(tmp_path))).id for _ in range(3)]
    env = _env(STATE_DIR=state, RAY_NAMESPACE="acceptance-burst", WORKER_BURST="true", RAY_ADDRESS=ray_cluster,
               WORKER_CONCURRENCY=2)
    started = time.monotonic()
    result = _run(["worker"], env, tmp_path, timeout_s=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Worker concurrency:  2" in result.stdout and "exiting (WORKER_BURST=true)" in result.stdout
    assert {j.state for j in service.repository.get_many(ids)} == {jobs.JobState.COMPLETED}
    assert time.monotonic() - started < 60


def _client_env(service_up: dict) -> dict[str, str]:
    return {**service_up["env"], "CONDUCTOR_URL": service_up["url"]}


def test_directives_patterns_and_wait(service_up: dict, tmp_path: Path) -> None:
    (tmp_path / "job.sh").write_text("#!/bin/bash\n#SBATCH -J from-directive   # a comment\n#SBATCH -c 2\n"
                                     "echo \"$SLURM_JOB_NAME $SLURM_CPUS_PER_TASK\"\n#SBATCH -J ignored\nexit 3\n")
    result = _run(["submit", "-W", "-o", "out-%x-%j.txt", "job.sh"], _client_env(service_up), tmp_path)
    assert result.returncode == 3, result.stderr  # --wait exits with the job's exit code
    job_id = int(result.stdout.split()[-1])
    assert (tmp_path / f"out-from-directive-{job_id}.txt").read_text() == "from-directive 2\n"
    assert _show(service_up, job_id, tmp_path)["exit_code"] == "3:0"


def test_wrap_stdin_and_parsable(service_up: dict, tmp_path: Path) -> None:
    env = _client_env(service_up)
    wrapped = _run(["submit", "--parsable", "-W", "--wrap", "echo wrapped"], env, tmp_path)
    assert wrapped.returncode == 0, wrapped.stderr
    job_id = int(wrapped.stdout.strip())
    assert (tmp_path / f"slurm-{job_id}.out").read_text() == "wrapped\n"
    piped = subprocess.run([CONDUCTOR, "submit", "--parsable"], input="#!/bin/bash\necho from-stdin\n", env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and _show(service_up, int(piped.stdout), tmp_path)["name"] == "sbatch"


def test_cancel_hold_release_from_the_cli(service_up: dict, tmp_path: Path) -> None:
    env = _client_env(service_up)
    held = int(_run(["submit", "--parsable", "-H", "--wrap", "true"], env, tmp_path).stdout)
    assert _show(service_up, held, tmp_path)["reason"] == "JobHeldUser"
    assert _run(["release", str(held)], env, tmp_path).returncode == 0
    wait_for(lambda: _show(service_up, held, tmp_path)["state"] == "COMPLETED", 30)
    long = int(_run(["submit", "--parsable", "--wrap", "sleep 300"], env, tmp_path).stdout)
    wait_for(lambda: _show(service_up, long, tmp_path)["state"] == "RUNNING", 30)
    assert _run(["cancel", str(long)], env, tmp_path).returncode == 0
    wait_for(lambda: _show(service_up, long, tmp_path)["state"] == "CANCELLED", 30)
    unknown = _run(["cancel", "999999"], env, tmp_path)
    assert unknown.returncode == 1 and unknown.stderr.strip() == "conductor: error: job 999999 does not exist"


def test_second_worker_attaches_to_the_running_scheduler(service_up: dict, tmp_path: Path) -> None:
    """A second `conductor worker` finds up's Ray and its scheduler, and leaves both running on exit."""
    result = _run(["worker"], {**service_up["env"], "CONDUCTOR_WORKER_BURST": "true"}, tmp_path, timeout_s=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(attached)" in result.stdout and "already running; attached" in result.stdout
    (tmp_path / "job.sh").write_text("#!/bin/bash\ntrue\n")
    env = {**service_up["env"], "CONDUCTOR_URL": service_up["url"]}
    submitted = _run(["submit", "--parsable", "job.sh"], env, tmp_path)
    job_id = int(submitted.stdout)
    wait_for(lambda: _show(service_up, job_id, tmp_path)["state"] == "COMPLETED", 30)


def test_sigterm_stops_up_cleanly(service_up: dict) -> None:
    """Runs last in this module: the service stops, and the Ray it started goes with it."""
    process = service_up["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not (service_up["state"] / "ray-address").exists()
