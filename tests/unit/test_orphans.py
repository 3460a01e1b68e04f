"""conductor.executor.orphans.reap: kills an attempt's leftover processes, and nothing of another cluster's job."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from conductor.executor import orphans
from tests.helpers import wait_for


def _leftover(job_id: int, output: Path) -> subprocess.Popen:
    """A job-like process tree in its own session (bash and a sleeping child), writing to ``output``."""
    env = {**os.environ, "CONDUCTOR_JOB_ID": str(job_id), "SLURM_JOB_ID": str(job_id)}
    with open(output, "wb") as out:
        return subprocess.Popen(["/bin/bash", "-c", "sleep 60 & echo $! > \"$0.child\"; wait", str(output)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_reap_kills_the_attempt_and_its_children_only(tmp_path: Path) -> None:
    ours = _leftover(7, tmp_path / "ours.out")
    other_cluster = _leftover(7, tmp_path / "theirs.out")  # same job id, another cluster's output file
    other_job = _leftover(8, tmp_path / "ours-8.out")
    try:
        child = int(wait_for(lambda: _read(tmp_path / "ours.out.child"), 10))
        killed = orphans.reap(7, (str(tmp_path / "ours.out"), str(tmp_path / "ours.err")))
        assert killed == 2  # bash and its child
        ours.wait(timeout=5)
        wait_for(lambda: not _alive(child), 5, message="the child to die")
        assert other_cluster.poll() is None and other_job.poll() is None
        assert orphans.reap(7, (str(tmp_path / "ours.out"),)) == 0, "nothing left the second time"
    finally:
        for process in (ours, other_cluster, other_job):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
