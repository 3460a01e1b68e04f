"""conductor.executor.run_job, in-process: real bash scripts, real processes, real files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conductor.executor import DEFAULT_PATH, RunRequest, RunResult, run_job, signal_job
from tests.helpers import wait_for


def run(tmp_path: Path, script: str, **fields: object) -> RunResult:
    values: dict[str, object] = dict(job_id=1, script=script, working_dir=str(tmp_path),
                                     stdout_path=str(tmp_path / "out.txt"), stderr_path=str(tmp_path / "err.txt"))
    values.update(fields)
    return run_job(RunRequest(**values))  # type: ignore[arg-type]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# ---- exit status ---------------------------------------------------------------------------------


def test_script_that_exits_zero(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\necho hello\n")
    assert (result.exit_code, result.signal, result.timed_out, result.cancelled, result.launch_error) == (
        0, None, False, False, None)
    assert read(tmp_path / "out.txt") == "hello\n"
    assert read(tmp_path / "err.txt") == ""


def test_exit_code_is_reported(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\nexit 3\n")
    assert (result.exit_code, result.signal, result.timed_out) == (3, None, False)


def test_script_killed_by_a_signal(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\nkill -9 $$\n")
    assert (result.exit_code, result.signal, result.timed_out) == (0, 9, False)


# ---- output files --------------------------------------------------------------------------------


def test_stdout_and_stderr_go_to_separate_files(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\necho to-out\necho to-err >&2\necho more-out\n")
    assert result.exit_code == 0
    assert read(tmp_path / "out.txt") == "to-out\nmore-out\n"
    assert read(tmp_path / "err.txt") == "to-err\n"


def test_stdout_and_stderr_to_the_same_file_keep_their_order(tmp_path: Path) -> None:
    both = tmp_path / "both.txt"
    result = run(tmp_path, "#!/bin/bash\necho one\necho two >&2\necho three\n", stdout_path=str(both),
                 stderr_path=str(both))
    assert result.exit_code == 0
    assert read(both) == "one\ntwo\nthree\n"


def test_output_file_is_truncated(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("old content that is longer\n")
    run(tmp_path, "#!/bin/bash\necho new\n")
    assert read(tmp_path / "out.txt") == "new\n"


def test_stdin_is_empty(tmp_path: Path) -> None:
    run(tmp_path, "#!/bin/bash\ncat; echo end\n")
    assert read(tmp_path / "out.txt") == "end\n"


# ---- working directory, environment, argv --------------------------------------------------------


def test_working_dir_is_respected(tmp_path: Path) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    run(tmp_path, "#!/bin/bash\npwd\n", working_dir=str(workdir))
    assert read(tmp_path / "out.txt") == f"{workdir}\n"


def test_environment_is_passed_and_path_is_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_TEST_WORKER_ONLY", "leaked")
    script = '#!/bin/bash\necho "foo=$FOO"\necho "path=$PATH"\necho "leak=${CONDUCTOR_TEST_WORKER_ONLY-unset}"\n'
    result = run(tmp_path, script, environment={"FOO": "bar baz"})
    assert result.exit_code == 0
    path = os.environ.get("PATH", DEFAULT_PATH)
    assert read(tmp_path / "out.txt") == f"foo=bar baz\npath={path}\nleak=unset\n"


def test_default_path_when_the_worker_has_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATH")
    run(tmp_path, '#!/bin/bash\necho "$PATH"\n')
    assert read(tmp_path / "out.txt") == f"{DEFAULT_PATH}\n"


def test_job_environment_overrides_path(tmp_path: Path) -> None:
    run(tmp_path, '#!/bin/bash\necho "$PATH"\n', environment={"PATH": "/opt/x/bin:/usr/bin:/bin"})
    assert read(tmp_path / "out.txt") == "/opt/x/bin:/usr/bin:/bin\n"


def test_argv_is_passed(tmp_path: Path) -> None:
    run(tmp_path, "#!/bin/bash\necho $#\nprintf '<%s>\\n' \"$@\"\n", argv=("a b", "", "c*"))
    assert read(tmp_path / "out.txt") == "3\n<a b>\n<>\n<c*>\n"


def test_script_without_shebang_runs_under_bash(tmp_path: Path) -> None:
    result = run(tmp_path, 'if [[ -n "$BASH_VERSION" ]]; then echo bash; fi\nexit 4\n')
    assert result.exit_code == 4
    assert read(tmp_path / "out.txt") == "bash\n"


def test_shebang_is_honoured(tmp_path: Path) -> None:
    result = run(tmp_path, f"#!{sys.executable}\nimport sys\nprint('python', sys.argv[1:])\nsys.exit(5)\n",
                 argv=("x",))
    assert result.exit_code == 5
    assert read(tmp_path / "out.txt") == "python ['x']\n"


# ---- launch errors -------------------------------------------------------------------------------


def test_launch_error_when_output_directory_does_not_exist(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "out.txt"
    marker = tmp_path / "ran"
    result = run(tmp_path, f"#!/bin/bash\ntouch {marker}\n", stdout_path=str(out), stderr_path=str(out))
    assert result.launch_error == f"No such file or directory: {out}"
    assert (result.exit_code, result.signal, result.timed_out) == (None, None, False)
    assert not marker.exists()


def test_launch_error_when_working_dir_does_not_exist(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\necho hi\n", working_dir=str(tmp_path / "nope"))
    assert result.launch_error is not None
    assert str(tmp_path / "nope") in result.launch_error
    assert result.exit_code is None


# ---- time limit ----------------------------------------------------------------------------------


def test_time_limit_terminates_the_job(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(tmp_path, "#!/bin/bash\necho started\nsleep 30\necho not-reached\n", time_limit_s=1, kill_wait_s=1)
    elapsed = time.monotonic() - started
    assert result.timed_out is True
    assert (result.exit_code, result.signal) == (0, signal.SIGTERM)
    assert 0.9 <= elapsed < 3.0
    assert 0.9 <= result.elapsed_s < 3.0
    assert read(tmp_path / "out.txt") == "started\n"


def test_time_limit_escalates_to_sigkill_after_kill_wait(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(tmp_path, "#!/bin/bash\ntrap '' TERM\nsleep 30\n", time_limit_s=1, kill_wait_s=1)
    elapsed = time.monotonic() - started
    assert result.timed_out is True
    assert result.signal == signal.SIGKILL
    assert 1.9 <= elapsed < 4.0


def test_no_time_limit_lets_the_job_finish(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\nsleep 0.2\nexit 0\n", time_limit_s=None)
    assert (result.exit_code, result.timed_out) == (0, False)
    assert result.elapsed_s >= 0.2


# ---- leftovers -----------------------------------------------------------------------------------


def test_background_grandchild_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"#!/bin/bash\nbash -c 'trap \"\" TERM; sleep 300' &\necho $! > {pidfile}\nexit 0\n"
    result = run(tmp_path, script)
    pid = int(read(pidfile))
    try:
        assert (result.exit_code, result.signal) == (0, None)
        wait_for(lambda: not pid_alive(pid), timeout_s=2, message=f"left-behind process {pid} to die")
    finally:
        with contextlib.suppress(ProcessLookupError):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_grandchild_is_killed_after_a_time_limit_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"#!/bin/bash\nbash -c 'trap \"\" TERM; sleep 300' &\necho $! > {pidfile}\nsleep 30\n"
    result = run(tmp_path, script, time_limit_s=1, kill_wait_s=5)
    pid = int(read(pidfile))
    try:
        assert result.timed_out is True
        assert result.elapsed_s < 3.0  # the leader died on SIGTERM: no KillWait
        wait_for(lambda: not pid_alive(pid), timeout_s=2, message=f"left-behind process {pid} to die")
    finally:
        with contextlib.suppress(ProcessLookupError):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


# ---- accounting ----------------------------------------------------------------------------------


def test_resource_usage_is_reported(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\ni=0\nwhile [ $i -lt 30000 ]; do i=$((i+1)); done\necho $i\n")
    assert result.exit_code == 0
    assert read(tmp_path / "out.txt") == "30000\n"
    assert isinstance(result.cpu_time_user_s, float) and isinstance(result.cpu_time_system_s, float)
    assert result.cpu_time_user_s >= 0 and result.cpu_time_system_s >= 0
    assert result.cpu_time_user_s + result.cpu_time_system_s > 0
    assert isinstance(result.max_rss_kb, int) and result.max_rss_kb > 0
    assert result.elapsed_s > 0


def test_spool_directory_is_removed(tmp_path: Path) -> None:
    run(tmp_path, "#!/bin/bash\necho \"$0\"\n", job_id=987654)
    script_path = Path(read(tmp_path / "out.txt").strip())
    assert script_path.name == "script"
    assert script_path.parent.name.startswith("conductor-job987654-")
    assert not script_path.parent.exists()


def hold_memory(mb: int, seconds: float) -> str:
    """A command line: a Python process that keeps ``mb`` MiB resident for ``seconds``."""
    return f"{sys.executable} -c 'b = bytearray({mb} * 1024 * 1024); import time; time.sleep({seconds})'"


def test_max_rss_is_the_job_s_own_peak(tmp_path: Path) -> None:
    result = run(tmp_path, f"#!/bin/bash\n{hold_memory(50, 1.5)}\n")
    assert result.exit_code == 0
    assert 40 * 1024 <= result.max_rss_kb <= 200 * 1024


def test_max_rss_of_a_small_job_does_not_include_the_worker(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\nsleep 1.5\n")
    assert result.exit_code == 0
    assert 0 < result.max_rss_kb < 20 * 1024  # ru_maxrss would say the worker's ~90 MB


def test_a_very_short_job_has_a_max_rss(tmp_path: Path) -> None:
    assert run(tmp_path, "#!/bin/bash\nsleep 0.1\n").max_rss_kb > 0


# ---- memory limit --------------------------------------------------------------------------------


def test_memory_limit_kills_the_job_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(tmp_path, f"#!/bin/bash\n{hold_memory(300, 30)} &\necho $! > child.pid\nwait\n",
                 memory_limit_mb=100, kill_wait_s=30)
    pid = int(read(tmp_path / "child.pid"))
    assert result.out_of_memory is True
    assert (result.signal, result.timed_out, result.cancelled) == (signal.SIGKILL, False, False)
    assert time.monotonic() - started < 3.0  # SIGKILL, no KillWait
    assert result.max_rss_kb > 100 * 1024
    wait_for(lambda: not pid_alive(pid), timeout_s=2, message=f"process {pid} over the limit to die")


@pytest.mark.parametrize("limit", [None, 0])
def test_no_memory_limit(tmp_path: Path, limit: int | None) -> None:
    result = run(tmp_path, f"#!/bin/bash\n{hold_memory(150, 0.7)}\n", memory_limit_mb=limit)
    assert (result.exit_code, result.signal, result.out_of_memory) == (0, None, False)
    assert result.max_rss_kb > 150 * 1024


def test_memory_limit_applies_to_the_sum_of_the_job_s_processes(tmp_path: Path) -> None:
    script = (f"#!/bin/bash\n{hold_memory(60, 30)} &\necho $! >> pids\n"
              f"{hold_memory(60, 30)} &\necho $! >> pids\nwait\n")
    result = run(tmp_path, script, memory_limit_mb=100)
    pids = [int(line) for line in read(tmp_path / "pids").split()]
    assert result.out_of_memory is True
    assert 100 * 1024 < result.max_rss_kb < 200 * 1024  # each process alone is under 100 MB
    for pid in pids:
        wait_for(lambda: not pid_alive(pid), timeout_s=2, message=f"process {pid} to die")


# ---- signals without ending ----------------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temporary directory, so pgid files of concurrent test runs cannot clash."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / "conductor-run"


def test_signal_job_reaches_a_running_job_that_keeps_running(tmp_path: Path, run_dir: Path) -> None:
    marker, stop = tmp_path / "marker", tmp_path / "stop"
    script = (f"#!/bin/bash\ntrap 'echo got >> {marker}' USR1\n"
              f"while [ ! -e {stop} ]; do sleep 0.05; done\necho finished\n")
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(run(tmp_path, script, job_id=42)))
    runner.start()
    try:
        pgid_file = wait_for(lambda: (run_dir / "42.pgid").exists() and run_dir / "42.pgid", timeout_s=5)
        assert signal_job(42, signal.SIGUSR1) is True
        wait_for(lambda: marker.exists() and read(marker) == "got\n", timeout_s=5, message="the trap to run")
        assert runner.is_alive()
    finally:
        stop.touch()
        runner.join(timeout=10)
    assert (results[0].exit_code, results[0].signal) == (0, None)
    assert read(tmp_path / "out.txt") == "finished\n"
    assert not pgid_file.exists()
    assert signal_job(42, signal.SIGUSR1) is False


def test_signal_job_of_an_unknown_job(run_dir: Path) -> None:
    assert signal_job(424242, signal.SIGUSR1) is False


def test_signal_job_with_a_stale_pgid_file(run_dir: Path) -> None:
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait()
    run_dir.mkdir()
    (run_dir / "7.pgid").write_text(str(gone.pid))
    assert signal_job(7, signal.SIGUSR1) is False


def test_pgid_file_is_removed_after_a_memory_kill(tmp_path: Path, run_dir: Path) -> None:
    result = run(tmp_path, f"#!/bin/bash\n{hold_memory(200, 30)}\n", job_id=9, memory_limit_mb=50)
    assert result.out_of_memory is True
    assert run_dir.is_dir() and not (run_dir / "9.pgid").exists()


# ---- who the script runs as (conductor.identity; other users: tests/acceptance/test_users.py) ------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching a job's Unix identity needs root")


def test_output_is_appended_with_append_output(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("before\n")
    assert run(tmp_path, "#!/bin/bash\necho after\n", append_output=True).exit_code == 0
    assert read(tmp_path / "out.txt") == "before\nafter\n"


def test_a_user_without_an_account_on_the_node_fails_at_launch(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\ntrue\n", run_as="no-such-user-x9", environment={"SLURMD_NODENAME": "n7"})
    assert result.launch_error == "user no-such-user-x9 has no Unix account on node n7"
    assert not (tmp_path / "out.txt").exists()


@needs_root
def test_run_as_a_user_gets_their_identity_and_umask(tmp_path: Path) -> None:
    result = run(tmp_path, '#!/bin/bash\nid -u; id -G; echo "$HOME $USER $LOGNAME"; umask; stat -c %a "$0"\n',
                 run_as="root", environment={"HOME": "/nowhere", "USER": "mallory", "SLURM_UMASK": "0077"})
    assert result.exit_code == 0, result
    uid, groups, names, umask, script_mode = read(tmp_path / "out.txt").splitlines()
    assert (uid, names, umask, script_mode) == ("0", "/root root root", "0077", "700")
    assert sorted(map(int, groups.split())) == sorted(set(os.getgrouplist("root", 0)))
    assert oct((tmp_path / "out.txt").stat().st_mode & 0o777) == oct(0o600)


@needs_root
def test_run_as_a_user_appends_or_truncates(tmp_path: Path) -> None:
    for name in ("out.txt", "err.txt"):
        (tmp_path / name).write_text("before\n")
    assert run(tmp_path, "#!/bin/bash\necho out; echo err >&2\n", run_as="root", append_output=True).exit_code == 0
    assert (read(tmp_path / "out.txt"), read(tmp_path / "err.txt")) == ("before\nout\n", "before\nerr\n")
    assert run(tmp_path, "#!/bin/bash\necho again\n", run_as="root").exit_code == 0
    assert (read(tmp_path / "out.txt"), read(tmp_path / "err.txt")) == ("again\n", "")


@needs_root
def test_an_output_file_that_cannot_be_written_fails_the_launch_and_creates_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\necho x\n", run_as="root", stderr_path=str(tmp_path / "missing" / "e"),
                 environment={"SLURMD_NODENAME": "n7"})
    assert result.launch_error == f"cannot write the stderr file {tmp_path}/missing/e (as root on node n7)"
    assert (result.exit_code, list(tmp_path.iterdir())) == (None, [])


@needs_root
def test_a_working_directory_that_cannot_be_entered_fails_the_launch(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\ntrue\n", run_as="root", working_dir=str(tmp_path / "gone"))
    assert result.launch_error.startswith(f"cannot enter the working directory {tmp_path}/gone (as root on node ")
    assert list(tmp_path.iterdir()) == []


@needs_root
def test_run_as_a_user_keeps_the_time_limit_and_the_group_kill(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\n(sleep 60; echo leaked) &\necho $! > child.pid\nsleep 60\n",
                 run_as="root", time_limit_s=1, kill_wait_s=0.5)
    assert (result.timed_out, result.signal) == (True, signal.SIGTERM)
    assert not pid_alive(int(read(tmp_path / "child.pid")))
