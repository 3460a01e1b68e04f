"""Issue 6, 5 and issue 11, 2, 3 and 5: SIGTERM to `conductor up` / `conductor worker`, and `conductor down`.

The process stops taking new work (the API stops listening, the scheduler stops dispatching),
and leaves running jobs or ends them as SHUTDOWN_RUNNING_JOBS says: keep (the default: they go
on under their keepers in the local Ray, which stays up, and the next `conductor up` adopts
them), requeue, or wait up to SHUTDOWN_WAIT_S and requeue the rest.  It exits in bounded time;
in requeue and wait modes it leaves no process behind, neither a job's process group nor the
raylet/GCS of the local Ray.  `conductor down` stops everything.  Cancel, signal, requeue and
shutdown work when the service was started with SIGINT ignored (nohup, setsid from a script).
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
from conductor.keeper import handle as keeper_handle
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
    """A `conductor up` / `conductor worker` subprocess in a session of its own; killed at the end if still
    there, and so is the local Ray it may have left up (by the pid in its state directory)."""

    def __init__(self, command: str, env: dict[str, str], directory: Path, *, ignore_sigint: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.state_dir = Path(env["CONDUCTOR_STATE_DIR"])
        self.log_path = directory / f"{command}.log"
        self._log = open(self.log_path, "w")
        # As `setsid conductor up &` from a non-interactive shell leaves it: SIGINT ignored, inherited by Ray.
        preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        self.process = subprocess.Popen([CONDUCTOR, command], env=env, cwd=directory, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self) -> None:
        wait_for(lambda: "Scheduler actor" in self.log() or self.process.poll() is not None, 150, interval_s=0.2,
                 message="the banner")
        assert self.process.poll() is None, self.log()

    def processes(self) -> set[int]:
        """Every live process it started: its descendants, and anything else in its session."""
        return process_tree(self.process.pid) | _session_members(self.process.pid)

    def local_ray_pid(self) -> int | None:
        try:
            pid = int((self.state_dir / "ray.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        ray_pid = self.local_ray_pid()
        if ray_pid is not None:  # a test that failed with jobs kept: the local Ray is a session of its own
            os.killpg(ray_pid, signal.SIGKILL)
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
    """SHUTDOWN_RUNNING_JOBS=requeue on `conductor worker` (PostgreSQL + Redis, a Ray it starts)."""
    settings = settings_factory("postgres-redis")
    worker = Daemon("worker", _env(settings, TOTAL_CPUS=4, TOTAL_MEMORY="8G", SHUTDOWN_RUNNING_JOBS="requeue"),
                    tmp_path / "worker")
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
    worker = Daemon("worker", _env(settings, RAY_ADDRESS=ray_cluster, SHUTDOWN_RUNNING_JOBS="requeue"),
                    tmp_path / "worker")
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
    keeper_handle.kill_all(settings.ray_namespace)  # idle keepers stay in an outside Ray; `conductor down` ends them
    service.close()


def _conductor(env: dict[str, str], *args: str, timeout_s: float = 150) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([CONDUCTOR, *args], env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"conductor {' '.join(args)} took over {timeout_s} s: {exc.stdout!r} {exc.stderr!r}") from None


@pytest.mark.timeout(360)
def test_up_stopped_and_started_again_keeps_running_jobs_and_records_what_ended_meanwhile(
        settings_factory, tmp_path: Path, daemons: list[Daemon]) -> None:
    """SHUTDOWN_RUNNING_JOBS=keep (the default): an upgrade's stop and start of `conductor up`."""
    settings = settings_factory("sqlite-embedded")
    port = free_port()
    env = _env(settings, API_PORT=port, TOTAL_CPUS=4, TOTAL_MEMORY="8G")
    env.update(CONDUCTOR_URL=f"http://127.0.0.1:{port}")
    first = Daemon("up", env, tmp_path / "up1")
    daemons.append(first)
    first.wait_started()
    service = JobService.from_settings(settings)
    hold, gate = tmp_path / "hold", tmp_path / "gate"
    hold.touch()
    gate.touch()
    lasts = _start_jobs(service, tmp_path, hold, 1)[0]
    ends_meanwhile = service.submit(spec(f"#!/bin/bash\necho \"${{SLURM_RESTART_COUNT:-0}} $$\""
                                         f" >> {tmp_path}/runs-$SLURM_JOB_ID"
                                         f"\nwhile [ -e {gate} ]; do sleep 0.1; done\nexit 3\n",
                                         working_dir=str(tmp_path))).id
    wait_until(lambda: runs_of(tmp_path, ends_meanwhile), 60, "the second script to start")
    scripts = [runs_of(tmp_path, i)[0][1] for i in (lasts, ends_meanwhile)]
    ray_pid = first.local_ray_pid()
    assert ray_pid is not None

    first.process.send_signal(signal.SIGTERM)
    wait_for(lambda: first.process.poll() is not None, EXIT_SLACK_S, interval_s=0.2, message="up to exit")
    assert first.process.returncode == 0, first.log()
    assert "running job(s) keep running" in first.log()
    assert all(map(pid_alive, [*scripts, ray_pid])), "the jobs and their Ray outlive the service"
    gate.unlink()  # one job ends with exit 3 while no scheduler runs
    wait_until(lambda: not pid_alive(scripts[1]), 30, "the second script to exit")
    assert {service.get(i).state for i in (lasts, ends_meanwhile)} == {jobs.JobState.RUNNING}

    second = Daemon("up", env, tmp_path / "up2")  # the new version: attaches to the same Ray, adopts
    daemons.append(second)
    second.wait_started()
    assert second.local_ray_pid() == ray_pid and "attached" in second.log()
    failed = wait_until(lambda: (j := service.get(ends_meanwhile)).state.is_terminal() and j, 60,
                        "the exit recorded")
    assert (failed.state, failed.exit_code_text, failed.restart_count) == (jobs.JobState.FAILED, "3:0", 0)
    assert service.get(lasts).state is jobs.JobState.RUNNING and pid_alive(scripts[0])
    hold.unlink()
    done = wait_until(lambda: (j := service.get(lasts)).state.is_terminal() and j, 60, "the long job to end")
    assert (done.state, done.exit_code_text, done.restart_count) == (jobs.JobState.COMPLETED, "0:0", 0)
    assert [len(runs_of(tmp_path, i)) for i in (lasts, ends_meanwhile)] == [1, 1], "a script ran twice"

    hold.touch()
    again = _start_jobs(service, tmp_path, hold, 1)[0]
    down = _conductor(env, "down")  # the one command that stops everything, jobs included
    assert down.returncode == 0, down.stderr
    assert "1 running job(s) requeued" in down.stdout, down.stdout
    wait_for(lambda: second.process.poll() is not None, EXIT_SLACK_S, interval_s=0.2, message="up to exit")
    wait_until(lambda: not pid_alive(ray_pid) and not pid_alive(runs_of(tmp_path, again)[0][1]), 30,
               "the local Ray and the job's script to stop")
    requeued = service.get(again)
    assert (requeued.state, requeued.restart_count) == (jobs.JobState.PENDING, 1), requeued
    assert service.repository.unreleased_allocations() == []
    service.close()


@pytest.mark.timeout(360)
def test_cancel_signal_requeue_and_shutdown_work_with_sigint_ignored(
        settings_factory, tmp_path: Path, daemons: list[Daemon]) -> None:
    """`setsid conductor up > up.log 2>&1 &` from a script: SIGINT ignored, inherited by Ray and its workers."""
    settings = settings_factory("postgres-redis")
    port = free_port()
    env = _env(settings, API_PORT=port, TOTAL_CPUS=4, TOTAL_MEMORY="8G", SHUTDOWN_RUNNING_JOBS="requeue")
    env.update(CONDUCTOR_URL=f"http://127.0.0.1:{port}")
    up = Daemon("up", env, tmp_path / "up", ignore_sigint=True)
    daemons.append(up)
    up.wait_started()
    wait_for(lambda: api_answers(f"http://127.0.0.1:{port}"), 60, interval_s=0.2, message="the API")
    service = JobService.from_settings(settings)
    hold = tmp_path / "hold"
    hold.touch()
    trapping = (f"#!/bin/bash\ntrap 'echo usr1 >> {tmp_path}/got-$SLURM_JOB_ID' USR1\n"
                f"echo \"${{SLURM_RESTART_COUNT:-0}} $$\" >> {tmp_path}/runs-$SLURM_JOB_ID\n"
                f"while [ -e {hold} ]; do sleep 0.1; done\n")
    cancelled, requeued, stopped = (service.submit(spec(trapping, name=n, working_dir=str(tmp_path))).id
                                    for n in ("cancelled", "requeued", "stopped"))
    wait_until(lambda: all(runs_of(tmp_path, i) for i in (cancelled, requeued, stopped)), 60, "three scripts")
    first = {i: runs_of(tmp_path, i)[0][1] for i in (cancelled, requeued, stopped)}
    sigints = [line for line in Path(f"/proc/{first[stopped]}/status").read_text().splitlines()
               if line.startswith("SigIgn")]
    assert int(sigints[0].split()[1], 16) & (1 << (signal.SIGINT - 1)), "the job's process should ignore SIGINT"

    assert _conductor(env, "cancel", "-s", "USR1", str(stopped)).returncode == 0
    wait_until(lambda: (tmp_path / f"got-{stopped}").exists(), 20, "the signal to reach the job")
    assert _conductor(env, "cancel", str(cancelled)).returncode == 0
    ended = wait_until(lambda: (j := service.get(cancelled)).state.is_terminal() and j, 30, "the cancel")
    assert (ended.state, ended.exit_code_text) == (jobs.JobState.CANCELLED, "0:15")
    assert not pid_alive(first[cancelled])
    assert _conductor(env, "requeue", str(requeued)).returncode == 0
    wait_until(lambda: len(runs_of(tmp_path, requeued)) == 2, 60, "the requeued job to run again")
    assert not pid_alive(first[requeued]) and service.get(requeued).restart_count == 1

    os.killpg(up.process.pid, signal.SIGTERM)  # to the service's whole process group
    wait_for(lambda: up.process.poll() is not None, 2 + EXIT_SLACK_S, interval_s=0.2, message="up to exit")
    again = [runs_of(tmp_path, requeued)[1][1], first[stopped]]
    wait_until(lambda: not any(map(pid_alive, again)), 30, "no script left running after the shutdown")
    assert {service.get(i).state for i in (requeued, stopped)} == {jobs.JobState.PENDING}
    assert up.local_ray_pid() is None, "requeue mode stops the local Ray"
    assert service.repository.unreleased_allocations() == []
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
