"""Leftover processes of a job attempt whose Ray task died without cleaning up.

The executor kills the job's process group whenever ``run_job`` ends, but a Ray worker
that is SIGKILLed (by an operator, the OOM killer, or Ray itself when the task's owner,
the scheduler actor, dies) runs no ``finally``: the script, in its own session, goes on
as an orphan.  ``reap`` finds and SIGKILLs those processes; the scheduler runs it as a
0-CPU task pinned to the job's node before it records the job's end or requeues it, so
an attempt never overlaps the next one and no process outlives its job (invariant 6).

A process belongs to the attempt when its environment has ``CONDUCTOR_JOB_ID=<id>`` and
its stdout or stderr is the job's output file: job ids repeat across conductor clusters
(one per database) sharing a host, output paths of one job do not.  Knows no database,
no Redis, no scheduler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

#: How long ``reap`` keeps killing (a script may fork while it is being killed).
REAP_TIMEOUT_S = 5.0


def reap(job_id: int, output_paths: tuple[str, ...], timeout_s: float = REAP_TIMEOUT_S) -> int:
    """SIGKILL every process of job ``job_id`` on this node; returns how many were killed."""
    marker = f"CONDUCTOR_JOB_ID={job_id}".encode()
    outputs = {os.path.realpath(p) for p in output_paths if p}
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        found = [pid for pid in _pids() if pid != os.getpid() and _belongs(pid, marker, outputs)]
        if not found or time.monotonic() > deadline:
            return len(killed)
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.05)  # let the kernel turn them into zombies (reaped by init or a subreaper)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _belongs(pid: int, marker: bytes, outputs: set[str]) -> bool:
    if _is_zombie(pid):
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            if marker not in handle.read().split(b"\0"):
                return False
        return any(os.path.realpath(os.readlink(f"/proc/{pid}/fd/{fd}")) in outputs for fd in (1, 2))
    except OSError:  # gone meanwhile, or not ours to read
        return False


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True
