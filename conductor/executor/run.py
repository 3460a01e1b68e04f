"""run_job: one job attempt, from launch to its end.

It runs the script in its own process group, in the job's working directory, with
stdout and stderr in files, waits for it without polling (a pidfd), enforces the time
limit (SIGTERM to the group, KillWait grace, SIGKILL), and on the way out kills whatever
the script left behind in its group (invariant 6).  Its keeper stops or signals it over the
attempt's control channel (conductor.executor.control); a Ray cancel (KeyboardInterrupt) is
handled as a stop too, where it arrives.

A job with ``run_as`` runs as that Unix account (conductor.executor.identity): the child drops to
its uid, gid and groups before exec, and enters the working directory and opens the output files
as that user.  The script is still the group leader, waited on by its pidfd, and the limits and
the stop path treat it as before.

At each 0.5 s wake-up it sums the resident memory of the group's processes: the peak is
the job's MaxRSS, and a sum over the memory limit SIGKILLs the group (as a memory cgroup
would).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from conductor.executor import control, orphans
from conductor.executor import identity as identity_module
from conductor.executor.group import MemoryWatch, kill_group, terminate_group
from conductor.executor.identity import Identity, LaunchError
from conductor.executor.report import EndCause, RunReport, RunRequest

#: Variables of the worker's own environment a job gets when it does not set them.
BASE_ENVIRONMENT_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
#: After an interrupted attempt, how long to keep looking for a child still between fork and exec.
LAUNCH_SETTLE_S = 0.5
#: When the first memory samples are taken after launch (seconds between them); then every 0.5 s.
SAMPLE_AFTER_S = (0.01, 0.04, 0.2)
#: How a wait ended: the script exited, a stop came, or a limit (time, memory) was reached.
_EXITED, _STOP, _LIMIT = "exited", "stop", "limit"
#: The batch shell learns its own pid as SLURM_TASK_PID (sbatch's): sh exports $$ and execs the
#: script in its place, so the pid is the script's.
_WITH_TASK_PID = ("/bin/sh", "-c", 'SLURM_TASK_PID=$$; export SLURM_TASK_PID; exec "$@"', "sh")


def warm_up(hold_s: float) -> int:
    """A no-op task that keeps a Ray worker busy for ``hold_s`` so several start at once.

    The scheduler runs a few at start so the first jobs find warm worker processes
    (starting one costs far more than a short job).
    """
    time.sleep(hold_s)
    return os.getpid()


def run_job(request: RunRequest) -> RunReport:
    """Run one job attempt to its end and report how it ended.

    A cancel (Ray raises it inside this function) may land anywhere, even inside Popen after
    the fork, before this function knows the child's pid: then the attempt's processes are
    found by their environment and output file (conductor.executor.orphans) and killed, so nothing
    outlives the attempt (invariant 6).
    """
    spool = tempfile.mkdtemp(prefix=f"conductor-job{request.job_id}-")
    process: subprocess.Popen | None = None
    channel = control.listen(request.control) if request.control else None  # before launch: no stop is lost
    try:
        try:
            identity = identity_module.of_job(request.run_as, node=_node_name(request))
            process, launch_status = _launch(request, spool, identity)
            failure = identity_module.launch_failure(process, launch_status) if launch_status is not None else None
        except LaunchError as exc:
            return RunReport(EndCause.LAUNCH_FAILED, detail=str(exc))
        except OSError as exc:
            detail = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
            return RunReport(EndCause.LAUNCH_FAILED, detail=detail)
        if failure:
            detail = f"{failure} (as {request.run_as} on node {_node_name(request)})"
            return RunReport(EndCause.LAUNCH_FAILED, detail=detail)
        return _supervise(process, request, channel)
    except BaseException:  # e.g. a cancel landing before supervision began: leave nothing behind
        if process is not None:
            kill_group(process.pid, signal.SIGKILL)
        # A child caught between fork and exec does not show the job's environment yet: look again.
        settle = time.monotonic() + LAUNCH_SETTLE_S
        while True:
            orphans.reap(request.job_id, (request.stdout_path, request.stderr_path), timeout_s=1.0)
            if time.monotonic() > settle:
                break
            time.sleep(0.05)
        raise
    finally:
        if channel is not None:
            channel.close()
        _remove_spool(spool)


def _remove_spool(spool: str) -> None:
    """The spool directory holds the script alone: two syscalls, not a tree walk, in the common case."""
    try:
        os.unlink(os.path.join(spool, "script"))
        os.rmdir(spool)
    except OSError:
        shutil.rmtree(spool, ignore_errors=True)


def _node_name(request: RunRequest) -> str:
    return request.environment.get("SLURMD_NODENAME") or os.uname().nodename


def _launch(request: RunRequest, spool: str,
            identity: Identity | None) -> tuple[subprocess.Popen, int | None]:
    """Start the script in its own session; (process, read end of its launch pipe, or None)."""
    script_path = _spool_script(request.script, spool, identity)
    # Honour a #! line as sbatch does; a script without one runs under bash.
    command = [script_path] if request.script.startswith("#!") else ["/bin/bash", script_path]
    argv = [*_WITH_TASK_PID, *command, *request.argv]
    if identity is None:
        return _popen_as_service(request, argv), None
    return _popen_as_user(request, identity, argv)


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
    """The script as ``identity``, which opens the output files itself (conductor.executor.identity)."""
    return identity_module.popen_as(
        identity, argv, working_dir=request.working_dir, stdout_path=request.stdout_path,
        stderr_path=request.stderr_path, append=request.append_output, env=_environment(request, identity),
        umask=identity_module.job_umask(request.environment))


def _environment(request: RunRequest, identity: Identity | None) -> dict[str, str]:
    env = {key: os.environ[key] for key in BASE_ENVIRONMENT_KEYS if key in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(request.environment)
    # Who the job runs as (sbatch's SLURM_JOB_UID/GID/USER): the account, or this worker's user.
    if identity is not None:  # who the job is, from the password database, whatever the submitter sent
        env.update(identity.environment())
        env.update(SLURM_JOB_UID=str(identity.uid), SLURM_JOB_GID=str(identity.gid), SLURM_JOB_USER=identity.name)
    else:
        env.update(SLURM_JOB_UID=str(os.getuid()), SLURM_JOB_GID=str(os.getgid()))
    if request.gpus:  # the devices Ray assigned to this task, under CUDA's and Slurm's names
        devices = os.environ.get("CUDA_VISIBLE_DEVICES", "")  # Ray sets it in the worker for the task's GPUs
        env.update(CUDA_VISIBLE_DEVICES=devices, CONDUCTOR_JOB_GPUS=devices, SLURM_JOB_GPUS=devices,
                   GPU_DEVICE_ORDINAL=devices)
    return env


def _supervise(process: subprocess.Popen, request: RunRequest, channel: socket.socket | None) -> RunReport:
    started = time.monotonic()
    memory = MemoryWatch(process.pid, request.memory_limit_mb)
    pidfd = os.pidfd_open(process.pid)
    try:
        try:
            ending = _watch(process.pid, pidfd, request, memory, channel)
        finally:
            kill_group(process.pid, signal.SIGKILL)  # whatever the script left behind
    finally:
        os.close(pidfd)
    # Reaped only now: until then the leader is a zombie, so its pid (the group id, which
    # signals were sent to until just above) cannot be reused by another process.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = status  # keep Popen from waiting on a reaped pid
    exited = os.WIFEXITED(status)
    # MaxRSS is the sampled peak, not ru_maxrss: on Linux that counts the Ray worker's
    # RSS the child had between fork and exec.  CPU times do come from rusage.
    return RunReport(
        ending, exit_code=os.WEXITSTATUS(status) if exited else 0, signal=None if exited else os.WTERMSIG(status),
        cpu_time_user_s=usage.ru_utime, cpu_time_system_s=usage.ru_stime, max_rss_kb=memory.peak_kb,
        elapsed_s=time.monotonic() - started)


def _watch(pgid: int, pidfd: int, request: RunRequest, memory: MemoryWatch,
           channel: socket.socket | None) -> EndCause:
    """Wait for the job, enforcing its limits: EXITED, TIMEOUT, OUT_OF_MEMORY or STOPPED."""
    deadline = time.monotonic() + request.time_limit_s if request.time_limit_s else None
    try:
        if deadline is not None and request.warning_signal is not None:
            waited = _wait_exit(pgid, pidfd, deadline - request.warning_lead_s, memory, channel)
            if waited == _LIMIT and not memory.exceeded:  # --signal: the warning, once, before the limit
                _send_warning(pgid, request)
                waited = _wait_exit(pgid, pidfd, deadline, memory, channel)
        else:
            waited = _wait_exit(pgid, pidfd, deadline, memory, channel)
        if waited == _EXITED:
            return EndCause.EXITED
        if waited == _STOP:
            terminate_group(pgid, pidfd, request.kill_wait_s)
            return EndCause.STOPPED
        if memory.exceeded:
            kill_group(pgid, signal.SIGKILL)  # no grace, as the OOM killer / a memory cgroup
            return EndCause.OUT_OF_MEMORY
        terminate_group(pgid, pidfd, request.kill_wait_s)
        return EndCause.TIMEOUT
    except KeyboardInterrupt:  # ray.cancel()
        terminate_group(pgid, pidfd, request.kill_wait_s)
        return EndCause.STOPPED


def _send_warning(pgid: int, request: RunRequest) -> None:
    """--signal: to the batch shell alone (B:) or to every process of the job."""
    with contextlib.suppress(ProcessLookupError):
        if request.warning_batch_only:
            os.kill(pgid, request.warning_signal)  # the batch shell leads the group: its pid is the pgid
        else:
            os.killpg(pgid, request.warning_signal)


def _wait_exit(pgid: int, pidfd: int, deadline: float | None, memory: MemoryWatch,
               channel: socket.socket | None) -> str:
    """Block until the process exits (_EXITED), a stop comes (_STOP), or the deadline passes or memory
    runs over (_LIMIT); signals that come meanwhile are passed to the group.

    The wait is cut into slices (SAMPLE_AFTER_S, then 0.5 s) so that a Ray KeyboardInterrupt gets a
    chance to run (select() itself is not interruptible by it); each slice also samples the job's
    memory.  The first samples come soon after launch so that a short job has a figure: at once the
    new program may not have a page in memory yet (Popen returns as the exec switches images).
    """
    watched = [pidfd] if channel is None else [pidfd, channel]
    slices = iter(SAMPLE_AFTER_S)
    while True:
        if memory.sample():
            return _LIMIT
        slice_s = next(slices, 0.5)
        timeout = slice_s if deadline is None else max(0.0, min(slice_s, deadline - time.monotonic()))
        ready, _, _ = select.select(watched, [], [], timeout)
        if pidfd in ready:
            return _EXITED
        for command in control.receive(channel) if channel is not None and channel in ready else ():
            if command.verb == control.STOP:
                return _STOP
            kill_group(pgid, command.signum)
        if deadline is not None and time.monotonic() >= deadline:
            return _LIMIT
