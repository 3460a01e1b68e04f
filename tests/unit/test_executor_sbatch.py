"""The executor's share of sbatch's behaviour: --open-mode, --signal, SLURM_TASK_PID and the job's uid."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conductor.executor import EndCause, RunReport, RunRequest, run_job


def run(tmp_path: Path, script: str, **fields: object) -> RunReport:
    values: dict[str, object] = dict(job_id=1, script=script, working_dir=str(tmp_path),
                                     stdout_path=str(tmp_path / "out.txt"), stderr_path=str(tmp_path / "out.txt"))
    values.update(fields)
    return run_job(RunRequest(**values))  # type: ignore[arg-type]


def test_output_is_truncated_by_default_and_appended_with_open_mode_append(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("earlier run\n")
    run(tmp_path, "#!/bin/bash\necho second\n")
    assert (tmp_path / "out.txt").read_text() == "second\n"
    run(tmp_path, "#!/bin/bash\necho third\n", append_output=True)
    assert (tmp_path / "out.txt").read_text() == "second\nthird\n"


def test_task_pid_is_the_batch_shells_pid_and_uid_gid_are_the_jobs_user(tmp_path: Path) -> None:
    run(tmp_path, '#!/bin/bash\necho "$SLURM_TASK_PID $$ $SLURM_JOB_UID $SLURM_JOB_GID $0"\n')
    task_pid, shell_pid, uid, gid, name = (tmp_path / "out.txt").read_text().split()
    assert task_pid == shell_pid and int(task_pid) > 1
    assert (int(uid), int(gid)) == (os.getuid(), os.getgid())
    assert name.endswith("/script")  # the script itself, not the sh that exported the pid


def test_signal_reaches_the_batch_shell_lead_seconds_before_the_limit(tmp_path: Path) -> None:
    script = ("#!/bin/bash\ntrap 'echo got USR1 after $SECONDS; exit 0' USR1\n"
              "for i in $(seq 100); do sleep 0.1; done\necho no signal\n")
    started = time.monotonic()
    report = run(tmp_path, script, time_limit_s=3, warning_signal=int(signal.SIGUSR1), warning_lead_s=2,
                 warning_batch_only=True)
    assert report.cause is EndCause.EXITED and report.exit_code == 0
    assert (tmp_path / "out.txt").read_text().startswith("got USR1 after 1")
    assert time.monotonic() - started < 2.9


def test_signal_without_b_reaches_every_process_of_the_job(tmp_path: Path) -> None:
    script = ("#!/bin/bash\n"
              "bash -c 'trap \"echo child got USR2; exit 0\" USR2; sleep 10 & wait' &\n"
              "trap 'echo shell got USR2' USR2\nwait; wait\n")
    report = run(tmp_path, script, time_limit_s=2, warning_signal=int(signal.SIGUSR2), warning_lead_s=1)
    assert report.cause is EndCause.EXITED
    assert sorted((tmp_path / "out.txt").read_text().splitlines()) == ["child got USR2", "shell got USR2"]


def test_no_signal_without_a_time_limit_and_the_limit_still_ends_the_job(tmp_path: Path) -> None:
    script = "#!/bin/bash\ntrap 'echo got USR1' USR1\nsleep 1.5\necho done\n"
    assert run(tmp_path, script, warning_signal=int(signal.SIGUSR1), warning_lead_s=1).exit_code == 0
    assert (tmp_path / "out.txt").read_text() == "done\n"
    report = run(tmp_path, "#!/bin/bash\ntrap '' USR1\nsleep 30\n", time_limit_s=2, kill_wait_s=0.5,
                 warning_signal=int(signal.SIGUSR1), warning_lead_s=1)
    assert report.cause is EndCause.TIMEOUT
