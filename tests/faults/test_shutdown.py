"""Issue 6, 5: SIGTERM to `conductor up` / `conductor worker`.

The process stops taking new work (the API stops listening, the scheduler stops dispatching),
ends running jobs as SHUTDOWN_RUNNING_JOBS says (requeue, or wait up to SHUTDOWN_WAIT_S and
requeue the rest), exits in bounded time, and leaves no process behind: neither a job's
process group nor the raylet/GCS of a Ray it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from conductor import jobs
from conductor.config import Settings
from conductor.service import JobService
from tests.faults.conftest import marked_script, runs_of, wait_until
from tests.helpers import api_answers, free_port, pid_alive, process_tree, spec, wait_for

pytestmark = [pytest.mark.timeout(240)]

CONDUCTOR = str(Path(sys.executable).with_name("conductor"))
#: How long a stopping process may take beyond what its settings allow (Ray's own shutdown, a loaded machine).
EXIT_SLACK_S = 60


def _env(settings: Settings, **values: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_") and k != "RAY_ADDRESS"}
    values = dict(STATE_DIR=settings.state_dir, RAY_NAMESPACE=settings.ray_namespace, NODE_NAME="shutnode",
                  DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url, KILL_WAIT_S=2,
                  RAY_DASHBOARD_PORT=free_port(), **values)
    env.update({f"CONDUCTOR_{k}": str(v) for k, v in values.items()})
    return env


class Daemon:
    """A `conductor up` / `conductor worker` subprocess in a session of its own; killed at the end if still there."""

    def __init__(self, command: str, env: dict[str, str], directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / f"{command}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen([CONDUCTOR, command], env=env, cwd=directory, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self) -> None:
        wait_for(lambda: "Scheduler actor" in self.log() or self.process.poll() is not None, 150, interval_s=0.2,
                 message="the banner")
        assert self.process.poll() is None, self.log()

    def processes(self) -> set[int]:
        """Every live process it started: its descendants, and anything else in its session."""
        return process_tree(self.process.pid) | _session_members(self.process.pid)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._log.close()


def _session_members(sid: int) -> set[int]:
    members = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                if int(stat.read().rsplit(")", 1)[-1].split()[4]) == sid and pid_alive(int(entry)):
                    members.add(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return members


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


def _stop_and_check_nothing_left(daemon: Daemon, bound_s: float, job_pids: list[int], before: set[int]) -> None:
    """After SIGTERM: the process exits 0 within ``bound_s``; its jobs' processes and ``before`` (what it had
    started) are gone, and so is anything else in its session."""
    started = time.monotonic()
    wait_for(lambda: daemon.process.poll() is not None, bound_s, interval_s=0.2, message="the process to exit")
    exited_after_s = time.monotonic() - started
    assert daemon.process.returncode == 0, daemon.log()
    assert exited_after_s < bound_s
    watched = set(job_pids) | before

    def gone() -> bool:
        return not any(map(pid_alive, watched)) and not _session_members(daemon.process.pid)

    try:
        wait_until(gone, 15)
    except AssertionError:
        raise AssertionError(f"processes remain: {[_describe(p) for p in watched if pid_alive(p)]}") from None


def _start_jobs(service: JobService, markers: Path, hold: Path, count: int, **fields) -> list[int]:
    ids = [service.submit(spec(marked_script(markers, hold), name=f"s{i}", working_dir=str(markers), **fields)).id
           for i in range(count)]
    wait_until(lambda: all(runs_of(markers, i) for i in ids), 60,
               f"the jobs' scripts to start ({[(j.state, j.reason) for j in service.repository.get_many(ids)]})")
    return ids


@pytest.mark.timeout(300)
def test_up_sigterm_wait_stops_api_and_dispatch_lets_jobs_finish_requeues_the_rest(
        settings_factory, tmp_path: Path, daemons: list[Daemon]) -> None:
    """SHUTDOWN_RUNNING_JOBS=wait on `conductor up` (SQLite + embedded queue, a Ray it starts)."""
    settings = settings_factory("sqlite-embedded")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(settings, API_PORT=port, TOTAL_CPUS=4, TOTAL_MEMORY="8G", SHUTDOWN_RUNNING_JOBS="wait",
               SHUTDOWN_WAIT_S=20)
    up = Daemon("up", env, tmp_path / "up")
    daemons.append(up)
    up.wait_started()
    wait_for(lambda: api_answers(url), 60, interval_s=0.2, message="the API")
    service = JobService.from_settings(settings)
    finishing, forever = tmp_path / "hold-finishing", tmp_path / "hold-forever"
    finishing.touch()
    forever.touch()
    finishes = _start_jobs(service, tmp_path, finishing, 1)[0]
    stays = _start_jobs(service, tmp_path, forever, 1)[0]
    job_pids = [runs_of(tmp_path, i)[0][1] for i in (finishes, stays)]
    before = up.processes()
    assert len(before) > 4, "expected the Ray processes and the jobs among its processes"

    up.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    wait_for(lambda: not api_answers(url), 15, interval_s=0.1, message="the API to stop listening")
    late = service.submit(spec(marked_script(tmp_path, finishing), name="late", working_dir=str(tmp_path))).id
    assert up.process.poll() is None, "still waiting for its running jobs"
    finishing.unlink()  # the first job now ends by itself, during the wait
    wait_until(lambda: service.get(finishes).state is jobs.JobState.COMPLETED, 15, "the finishing job to complete")
    assert up.process.poll() is None and service.get(stays).state is jobs.JobState.RUNNING

    _stop_and_check_nothing_left(up, 20 + EXIT_SLACK_S, job_pids, before)
    waited_s = time.monotonic() - sent
    assert waited_s >= 20 - 1, f"exited after {waited_s:.1f} s, before SHUTDOWN_WAIT_S=20 was up"
    requeued = service.get(stays)
    assert (requeued.state, requeued.restart_count) == (jobs.JobState.PENDING, 1), requeued
    assert requeued.reason.startswith("Requeued")
    assert service.get(late).state is jobs.JobState.PENDING and runs_of(tmp_path, late) == [], \
        "a job submitted after SIGTERM must not start"
    assert service.repository.unreleased_allocations() == []
    service.close()


@pytest.mark.timeout(240)
def test_worker_sigterm_requeue_terminates_jobs_and_stops_its_ray(settings_factory, tmp_path: Path,
                                                                  daemons: list[Daemon]) -> None:
    """SHUTDOWN_RUNNING_JOBS=requeue (default) on `conductor worker` (PostgreSQL + Redis, a Ray it starts)."""
    settings = settings_factory("postgres-redis")
    worker = Daemon("worker", _env(settings, TOTAL_CPUS=4, TOTAL_MEMORY="8G"), tmp_path / "worker")
    daemons.append(worker)
    worker.wait_started()
    service = JobService.from_settings(settings)
    hold = tmp_path / "hold"
    hold.touch()
    again = _start_jobs(service, tmp_path, hold, 1)[0]
    once = _start_jobs(service, tmp_path, hold, 1, requeue=False)[0]
    job_pids = [runs_of(tmp_path, i)[0][1] for i in (again, once)]
    before = worker.processes()
    names = {_name(pid) for pid in before}
    assert {"raylet", "gcs_server"} <= names, names

    worker.process.send_signal(signal.SIGTERM)
    _stop_and_check_nothing_left(worker, 2 + EXIT_SLACK_S, job_pids, before)

    requeued, cancelled = service.get(again), service.get(once)
    assert (requeued.state, requeued.restart_count) == (jobs.JobState.PENDING, 1), requeued
    assert (requeued.reason, requeued.reason_message) == (jobs.Reason.REQUEUED, "scheduler stopped")
    assert cancelled.state is jobs.JobState.CANCELLED
    assert service.repository.unreleased_allocations() == []
    assert [len(runs_of(tmp_path, i)) for i in (again, once)] == [1, 1]
    assert not (tmp_path / f"ends-{again}").exists(), "the job was terminated, not left to finish"
    service.close()


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_worker_attached_to_an_outside_ray_stops_its_scheduler_and_leaves_ray_running(
        ray_cluster: str, settings_factory, tmp_path: Path, daemons: list[Daemon]) -> None:
    """A worker that found Ray running (RAY_ADDRESS) stops the scheduler it started, not Ray."""
    import ray

    from conductor.scheduler.handle import ACTOR_NAME

    settings = settings_factory("postgres-redis")
    worker = Daemon("worker", _env(settings, RAY_ADDRESS=ray_cluster), tmp_path / "worker")
    daemons.append(worker)
    worker.wait_started()
    service = JobService.from_settings(settings)
    hold = tmp_path / "hold"
    hold.touch()
    job = _start_jobs(service, tmp_path, hold, 1)[0]
    job_pids = [runs_of(tmp_path, job)[0][1]]
    before = worker.processes()

    worker.process.send_signal(signal.SIGTERM)
    _stop_and_check_nothing_left(worker, 2 + EXIT_SLACK_S, job_pids, before)

    assert service.get(job).state is jobs.JobState.PENDING
    with pytest.raises(ValueError):
        ray.get_actor(ACTOR_NAME, namespace=settings.ray_namespace)
    assert ray.get(ray.remote(lambda: "still here").remote(), timeout=60) == "still here"
    service.close()


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _describe(pid: int) -> str:
    try:
        return f"{pid} {Path(f'/proc/{pid}/cmdline').read_text().replace(chr(0), ' ')[:200]}"
    except OSError:
        return f"{pid} (gone)"
