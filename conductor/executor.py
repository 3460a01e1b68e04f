"""run_job: the body of each job's Ray task.  Knows no database, no Redis, no scheduler.

It runs the script in its own process group, in the job's working directory, with
stdout and stderr in files, waits for it without polling (a pidfd), enforces the time
limit (SIGTERM to the group, KillWait grace, SIGKILL), and on the way out kills whatever
the script left behind in its group (invariant 6).  Cancellation arrives from Ray as
KeyboardInterrupt and is handled the same way.
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

#: Variables of the worker's own environment a job gets when it does not set them.
BASE_ENVIRONMENT_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


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


@dataclass(frozen=True)
class RunResult:
    """How the attempt ended.  ``launch_error`` is set when the script never started."""

    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
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
    """Run one job attempt to its end and report how it ended."""
    spool = tempfile.mkdtemp(prefix=f"conductor-job{request.job_id}-")
    try:
        try:
            process = _launch(request, spool)
        except OSError as exc:
            return RunResult(launch_error=f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        try:
            return _supervise(process, request)
        except BaseException:  # e.g. a cancel landing before supervision began: leave nothing behind
            _kill_group(process.pid, signal.SIGKILL)
            raise
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _launch(request: RunRequest, spool: str) -> subprocess.Popen:
    script_path = os.path.join(spool, "script")
    with open(script_path, "w", encoding="utf-8") as handle:
        handle.write(request.script)
    os.chmod(script_path, 0o700)
    # Honour a #! line as sbatch does; a script without one runs under bash.
    command = [script_path] if request.script.startswith("#!") else ["/bin/bash", script_path]
    with contextlib.ExitStack() as files:
        stdout = files.enter_context(open(request.stdout_path, "wb"))
        stderr = stdout if request.stderr_path == request.stdout_path else files.enter_context(
            open(request.stderr_path, "wb"))
        return subprocess.Popen(
            [*command, *request.argv], cwd=request.working_dir, env=_environment(request),
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True, close_fds=True)


def _environment(request: RunRequest) -> dict[str, str]:
    env = {key: os.environ[key] for key in BASE_ENVIRONMENT_KEYS if key in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(request.environment)
    return env


def _supervise(process: subprocess.Popen, request: RunRequest) -> RunResult:
    started = time.monotonic()
    deadline = started + request.time_limit_s if request.time_limit_s else None
    pidfd = os.pidfd_open(process.pid)
    timed_out = cancelled = False
    try:
        try:
            if not _wait_exit(pidfd, deadline):
                timed_out = True
                _terminate_group(process.pid, pidfd, request.kill_wait_s)
        except KeyboardInterrupt:  # ray.cancel()
            cancelled = True
            _terminate_group(process.pid, pidfd, request.kill_wait_s)
    finally:
        # The leader is a zombie until reaped, so its pid (the group id) cannot be reused yet.
        _kill_group(process.pid, signal.SIGKILL)  # whatever the script left behind
        os.close(pidfd)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = status  # keep Popen from waiting on a reaped pid
    exited = os.WIFEXITED(status)
    return RunResult(
        exit_code=os.WEXITSTATUS(status) if exited else 0,
        signal=None if exited else os.WTERMSIG(status),
        timed_out=timed_out, cancelled=cancelled, cpu_time_user_s=usage.ru_utime,
        cpu_time_system_s=usage.ru_stime, max_rss_kb=usage.ru_maxrss, elapsed_s=time.monotonic() - started)


def _wait_exit(pidfd: int, deadline: float | None) -> bool:
    """Block until the process exits (True) or the deadline passes (False).

    The wait is cut into 0.5 s slices only so that Ray's KeyboardInterrupt gets
    a chance to run: select() itself is not interruptible by it.
    """
    while True:
        timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if ready:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


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
