"""run_job: the body of each job's Ray task.  Knows no database, no Redis, no scheduler.

It runs the script in its own process group, in the job's working directory, with
stdout and stderr in files, waits for it without polling (a pidfd), enforces the time
limit (SIGTERM to the group, KillWait grace, SIGKILL), and on the way out kills whatever
the script left behind in its group (invariant 6).  Cancellation arrives from Ray as
KeyboardInterrupt and is handled the same way.

At each 0.5 s wake-up it sums the resident memory of the group's processes: the peak is
the job's MaxRSS, and a sum over the memory limit SIGKILLs the group (as a memory cgroup
would).  While the job runs its group id is in ``<tmp>/conductor-run/<job_id>.pgid``, so
that ``signal_job`` (another task on the same node) can signal it without ending it.

A job with ``run_as`` runs as that Unix account (conductor.identity): the child drops to its
uid, gid and groups before exec, and enters the working directory and opens the output files
as that user.  The script is still the group leader, waited on by its pidfd, and the limits
and the cancel path treat it as before.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterator

from conductor import identity as identity_module
from conductor import orphans
from conductor.identity import Identity, LaunchError

#: Variables of the worker's own environment a job gets when it does not set them.
BASE_ENVIRONMENT_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
#: After an interrupted attempt, how long to keep looking for a child still between fork and exec.
LAUNCH_SETTLE_S = 0.5
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to run one job attempt on a node."""

    job_id: int
    script: str
    working_dir: str
    stdout_path: str
    stderr_path: str
    environment: dict[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = ()
    time_limit_s: int | None = None
    kill_wait_s: float = 30.0
    memory_limit_mb: int | None = None  # None or 0: no limit (sbatch --mem=0)
    gpus: int = 0  #: GPUs Ray assigned to the task (their ids reach the job as CUDA_VISIBLE_DEVICES)
    run_as: str = ""  #: Unix account to run as (resolved on this node); empty: the worker's own user
    append_output: bool = False  #: open the output files for appending (--open-mode=append), not truncated


@dataclass(frozen=True)
class RunResult:
    """How the attempt ended.  ``launch_error`` is set when the script never started."""

    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    out_of_memory: bool = False
    launch_error: str | None = None
    cpu_time_user_s: float = 0.0
    cpu_time_system_s: float = 0.0
    max_rss_kb: int = 0
    elapsed_s: float = 0.0


def warm_up(hold_s: float) -> int:
    """A no-op task that keeps a Ray worker busy for ``hold_s`` so several start at once.

    The scheduler runs a few at start so the first jobs find warm worker processes
    (starting one costs far more than a short job).
    """
    time.sleep(hold_s)
    return os.getpid()


def run_job(request: RunRequest) -> RunResult:
    """Run one job attempt to its end and report how it ended.

    A cancel (Ray raises it inside this function) may land anywhere, even inside Popen after
    the fork, before this function knows the child's pid: then the attempt's processes are
    found by their environment and output file (conductor.orphans) and killed, so nothing
    outlives the attempt (invariant 6).
    """
    spool = tempfile.mkdtemp(prefix=f"conductor-job{request.job_id}-")
    process: subprocess.Popen | None = None
    try:
        try:
            identity = identity_module.of_job(request.run_as, node=_node_name(request))
            process, launch_status = _launch(request, spool, identity)
            failure = identity_module.launch_failure(process, launch_status) if launch_status is not None else None
        except LaunchError as exc:
            return RunResult(launch_error=str(exc))
        except OSError as exc:
            return RunResult(launch_error=f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        if failure:
            return RunResult(launch_error=f"{failure} (as {request.run_as} on node {_node_name(request)})")
        return _supervise(process, request)
    except BaseException:  # e.g. a cancel landing before supervision began: leave nothing behind
        if process is not None:
            _kill_group(process.pid, signal.SIGKILL)
        # A child caught between fork and exec does not show the job's environment yet: look again.
        settle = time.monotonic() + LAUNCH_SETTLE_S
        while True:
            orphans.reap(request.job_id, (request.stdout_path, request.stderr_path), timeout_s=1.0)
            if time.monotonic() > settle:
                break
            time.sleep(0.05)
        raise
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _node_name(request: RunRequest) -> str:
    return request.environment.get("SLURMD_NODENAME") or os.uname().nodename


def _launch(request: RunRequest, spool: str,
            identity: Identity | None) -> tuple[subprocess.Popen, int | None]:
    """Start the script in its own session; (process, read end of its launch pipe, or None)."""
    script_path = _spool_script(request.script, spool, identity)
    # Honour a #! line as sbatch does; a script without one runs under bash.
    command = [script_path] if request.script.startswith("#!") else ["/bin/bash", script_path]
    if identity is None:
        return _popen_as_service(request, [*command, *request.argv]), None
    return _popen_as_user(request, identity, [*command, *request.argv])


def _spool_script(script: str, spool: str, identity: Identity | None) -> str:
    """Write the script into the (0700) spool directory; with an identity both belong to that user."""
    script_path = os.path.join(spool, "script")
    with open(script_path, "w", encoding="utf-8") as handle:
        handle.write(script)
    os.chmod(script_path, 0o700)
    if identity is not None:
        identity_module.hand_over(identity, spool, script_path)
    return script_path


def _popen_as_service(request: RunRequest, argv: list[str]) -> subprocess.Popen:
    """The script as the worker's own user: the output files are opened here, then handed over."""
    mode = "ab" if request.append_output else "wb"
    with contextlib.ExitStack() as files:
        stdout = files.enter_context(open(request.stdout_path, mode))
        stderr = stdout if request.stderr_path == request.stdout_path else files.enter_context(
            open(request.stderr_path, mode))
        return subprocess.Popen(
            argv, cwd=request.working_dir, env=_environment(request, None),
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True, close_fds=True)


def _popen_as_user(request: RunRequest, identity: Identity,
                   argv: list[str]) -> tuple[subprocess.Popen, int]:
    """The script as ``identity``, which opens the output files itself (conductor.identity)."""
    return identity_module.popen_as(
        identity, argv, working_dir=request.working_dir, stdout_path=request.stdout_path,
        stderr_path=request.stderr_path, append=request.append_output, env=_environment(request, identity),
        umask=identity_module.job_umask(request.environment))


def _environment(request: RunRequest, identity: Identity | None) -> dict[str, str]:
    env = {key: os.environ[key] for key in BASE_ENVIRONMENT_KEYS if key in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(request.environment)
    if identity is not None:  # who the job is, from the password database, whatever the submitter sent
        env.update(identity.environment())
    if request.gpus:  # the devices Ray assigned to this task, under CUDA's and Slurm's names
        devices = ",".join(_assigned_gpus())
        env.update(CUDA_VISIBLE_DEVICES=devices, CONDUCTOR_JOB_GPUS=devices, SLURM_JOB_GPUS=devices)
    return env


def _assigned_gpus() -> list[str]:
    """GPU ids Ray gave the running task (empty outside a Ray task)."""
    import ray  # only ever called inside a Ray task

    return [str(gpu) for gpu in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]


def _supervise(process: subprocess.Popen, request: RunRequest) -> RunResult:
    started = time.monotonic()
    memory = _MemoryWatch(process.pid, request.memory_limit_mb)
    pidfd = os.pidfd_open(process.pid)
    try:
        with _pgid_recorded(request.job_id, process.pid):
            try:
                ending = _watch(process.pid, pidfd, request, memory)
            finally:
                _kill_group(process.pid, signal.SIGKILL)  # whatever the script left behind
    finally:
        os.close(pidfd)
    # Reaped only now: until then the leader is a zombie, so its pid (the group id, which
    # was in the pgid file until just above) cannot be reused by another process.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = status  # keep Popen from waiting on a reaped pid
    exited = os.WIFEXITED(status)
    # MaxRSS is the sampled peak, not ru_maxrss: on Linux that counts the Ray worker's
    # RSS the child had between fork and exec.  CPU times do come from rusage.
    return RunResult(
        exit_code=os.WEXITSTATUS(status) if exited else 0,
        signal=None if exited else os.WTERMSIG(status),
        timed_out=ending == "timeout", cancelled=ending == "cancelled", out_of_memory=ending == "oom",
        cpu_time_user_s=usage.ru_utime, cpu_time_system_s=usage.ru_stime, max_rss_kb=memory.peak_kb,
        elapsed_s=time.monotonic() - started)


def _watch(pgid: int, pidfd: int, request: RunRequest, memory: _MemoryWatch) -> str:
    """Wait for the job, enforcing its limits: "exited", "timeout", "oom" or "cancelled"."""
    deadline = time.monotonic() + request.time_limit_s if request.time_limit_s else None
    try:
        if _wait_exit(pidfd, deadline, memory):
            return "exited"
        if memory.exceeded:
            _kill_group(pgid, signal.SIGKILL)  # no grace, as the OOM killer / a memory cgroup
            return "oom"
        _terminate_group(pgid, pidfd, request.kill_wait_s)
        return "timeout"
    except KeyboardInterrupt:  # ray.cancel()
        _terminate_group(pgid, pidfd, request.kill_wait_s)
        return "cancelled"


def _wait_exit(pidfd: int, deadline: float | None, memory: _MemoryWatch) -> bool:
    """Block until the process exits (True), or the deadline passes or memory runs over (False).

    The wait is cut into 0.5 s slices so that Ray's KeyboardInterrupt gets a chance
    to run (select() itself is not interruptible by it); each slice also samples the
    job's memory, the first one right after launch so that a short job has a figure.
    """
    while True:
        if memory.sample():
            return False
        timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if ready:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class _MemoryWatch:
    """Samples the summed RSS of one process group; keeps the peak and the over-limit verdict."""

    def __init__(self, pgid: int, limit_mb: int | None) -> None:
        self.pgid = pgid
        self.limit_kb = limit_mb * 1024 if limit_mb else None
        self.peak_kb = 0
        self.exceeded = False

    def sample(self) -> bool:
        """Take one sample; True when the group is over its limit."""
        rss_kb = _group_rss_kb(self.pgid)
        self.peak_kb = max(self.peak_kb, rss_kb)
        self.exceeded = self.limit_kb is not None and rss_kb > self.limit_kb
        return self.exceeded


def _group_rss_kb(pgid: int) -> int:
    """Sum of the resident memory (KiB) of every process in group ``pgid``.

    By group rather than by parentage, so that a child whose parent exited (reparented
    away from the script) still counts.  Field 24 of /proc/<pid>/stat is the same RSS as
    statm's and VmRSS; reading it from stat costs one open per process, not two.
    """
    pages = 0
    for name in os.listdir("/proc"):
        fields = _stat_fields(name) if name.isdigit() else None
        if fields is not None and int(fields[2]) == pgid:  # field 5, pgrp
            pages += int(fields[21])  # field 24, rss in pages
    return pages * _PAGE_KB


def _stat_fields(pid: str) -> list[bytes] | None:
    """Fields 3 onwards of /proc/<pid>/stat; None when the process has gone."""
    # os.open/os.read rather than open(): a third of the cost, and this runs per process per sample.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    return stat.rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces or ')'


def _terminate_group(pgid: int, pidfd: int, grace_s: float) -> None:
    """SIGTERM the whole group, give it ``grace_s``, then SIGKILL it (Slurm's KillWait)."""
    _kill_group(pgid, signal.SIGCONT)
    _kill_group(pgid, signal.SIGTERM)
    ready, _, _ = select.select([pidfd], [], [], grace_s)
    if not ready:
        _kill_group(pgid, signal.SIGKILL)


def _kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def signal_job(job_id: int, signum: int) -> bool:
    """Send ``signum`` to every process of job ``job_id`` running on this node, without ending it.

    Returns False when no such job runs here (no pgid file, or a stale one whose group
    is gone).  Must run on the job's node: the pgid file is per node.
    """
    try:
        with open(_pgid_path(job_id), encoding="ascii") as handle:
            pgid = int(handle.read())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):  # PermissionError: the id now belongs to someone else
        return False
    return True


def _pgid_path(job_id: int) -> str:
    return os.path.join(tempfile.gettempdir(), "conductor-run", f"{job_id}.pgid")


@contextlib.contextmanager
def _pgid_recorded(job_id: int, pgid: int) -> Iterator[None]:
    """Keep the job's group id in its pgid file for the duration of the block."""
    path = _pgid_path(job_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}"
    with open(partial, "w", encoding="ascii") as handle:
        handle.write(str(pgid))
    os.replace(partial, path)  # signal_job never reads a half-written file
    try:
        yield
    finally:
        # Only our own: a later attempt of the same job on this node may have replaced it.
        with contextlib.suppress(OSError, ValueError):
            with open(path, encoding="ascii") as handle:
                ours = int(handle.read()) == pgid
            if ours:
                os.remove(path)
