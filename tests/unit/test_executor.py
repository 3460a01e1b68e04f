"""conductor.executor.run_job, in-process: real bash scripts, real processes, real files."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from conductor.executor import DEFAULT_PATH, EndCause, RunReport, RunRequest, control, run_job
from tests.helpers import wait_for


def run(tmp_path: Path, script: str, **fields: object) -> RunReport:
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
    assert (result.exit_code, result.signal, result.cause, result.detail) == (0, None, EndCause.EXITED, "")
    assert read(tmp_path / "out.txt") == "hello\n"
    assert read(tmp_path / "err.txt") == ""


def test_exit_code_is_reported(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\nexit 3\n")
    assert (result.exit_code, result.signal, result.cause) == (3, None, EndCause.EXITED)


def test_script_killed_by_a_signal(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\nkill -9 $$\n")
    assert (result.exit_code, result.signal, result.cause) == (0, 9, EndCause.EXITED)


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
    assert (result.cause, result.detail) == (EndCause.LAUNCH_FAILED, f"No such file or directory: {out}")
    assert (result.exit_code, result.signal) == (None, None)
    assert not marker.exists()


def test_launch_error_when_working_dir_does_not_exist(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\necho hi\n", working_dir=str(tmp_path / "nope"))
    assert result.cause is EndCause.LAUNCH_FAILED
    assert str(tmp_path / "nope") in result.detail
    assert result.exit_code is None


# ---- time limit ----------------------------------------------------------------------------------


def test_time_limit_terminates_the_job(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(tmp_path, "#!/bin/bash\necho started\nsleep 30\necho not-reached\n", time_limit_s=1, kill_wait_s=1)
    elapsed = time.monotonic() - started
    assert result.cause is EndCause.TIMEOUT
    assert (result.exit_code, result.signal) == (0, signal.SIGTERM)
    assert 0.9 <= elapsed < 3.0
    assert 0.9 <= result.elapsed_s < 3.0
    assert read(tmp_path / "out.txt") == "started\n"


def test_time_limit_escalates_to_sigkill_after_kill_wait(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(tmp_path, "#!/bin/bash\ntrap '' TERM\nsleep 30\n", time_limit_s=1, kill_wait_s=1)
    elapsed = time.monotonic() - started
    assert result.cause is EndCause.TIMEOUT
    assert result.signal == signal.SIGKILL
    assert 1.9 <= elapsed < 4.0


def test_no_time_limit_lets_the_job_finish(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\nsleep 0.2\nexit 0\n", time_limit_s=None)
    assert (result.exit_code, result.cause) == (0, EndCause.EXITED)
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
        assert result.cause is EndCause.TIMEOUT
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
    assert result.cause is EndCause.OUT_OF_MEMORY
    assert result.signal == signal.SIGKILL
    assert time.monotonic() - started < 3.0  # SIGKILL, no KillWait
    assert result.max_rss_kb > 100 * 1024
    wait_for(lambda: not pid_alive(pid), timeout_s=2, message=f"process {pid} over the limit to die")


@pytest.mark.parametrize("limit", [None, 0])
def test_no_memory_limit(tmp_path: Path, limit: int | None) -> None:
    result = run(tmp_path, f"#!/bin/bash\n{hold_memory(150, 0.7)}\n", memory_limit_mb=limit)
    assert (result.exit_code, result.signal, result.cause) == (0, None, EndCause.EXITED)
    assert result.max_rss_kb > 150 * 1024


def test_memory_limit_applies_to_the_sum_of_the_job_s_processes(tmp_path: Path) -> None:
    script = (f"#!/bin/bash\n{hold_memory(60, 30)} &\necho $! >> pids\n"
              f"{hold_memory(60, 30)} &\necho $! >> pids\nwait\n")
    result = run(tmp_path, script, memory_limit_mb=100)
    pids = [int(line) for line in read(tmp_path / "pids").split()]
    assert result.cause is EndCause.OUT_OF_MEMORY
    assert 100 * 1024 < result.max_rss_kb < 200 * 1024  # each process alone is under 100 MB
    for pid in pids:
        wait_for(lambda: not pid_alive(pid), timeout_s=2, message=f"process {pid} to die")


# ---- the control channel: stop and signal -------------------------------------------------------


def _token() -> str:
    return f"test-{uuid.uuid4().hex}"


def _running(tmp_path: Path, script: str, token: str, **fields: object) -> tuple[threading.Thread, list]:
    results: list[RunReport] = []
    runner = threading.Thread(target=lambda: results.append(run(tmp_path, script, control=token, **fields)))
    runner.start()
    return runner, results


def test_a_signal_reaches_a_running_job_that_keeps_running(tmp_path: Path) -> None:
    marker, stop, ready, token = tmp_path / "marker", tmp_path / "stop", tmp_path / "ready", _token()
    script = (f"#!/bin/bash\ntrap 'echo got >> {marker}' USR1\ntouch {ready}\n"
              f"while [ ! -e {stop} ]; do sleep 0.05; done\necho finished\n")
    runner, results = _running(tmp_path, script, token, job_id=42)
    try:
        wait_for(ready.exists, timeout_s=5, message="the trap to be set")
        assert control.send(token, control.Command(control.SIGNAL, signal.SIGUSR1))
        wait_for(lambda: marker.exists() and "got" in read(marker), timeout_s=5, message="the trap to run")
        assert runner.is_alive()
    finally:
        stop.touch()
        runner.join(timeout=10)
    assert (results[0].cause, results[0].exit_code) == (EndCause.EXITED, 0)
    assert read(tmp_path / "out.txt") == "finished\n"
    assert control.send(token, control.Command(control.SIGNAL, signal.SIGUSR1)) is False  # over: nobody listens


def test_a_stop_ends_the_job_with_sigterm_then_kill_wait(tmp_path: Path) -> None:
    token, ready = _token(), tmp_path / "ready"
    script = f"#!/bin/bash\ntrap 'echo term; exit 7' TERM\ntouch {ready}\nwhile true; do sleep 0.05; done\n"
    runner, results = _running(tmp_path, script, token, kill_wait_s=5.0)
    wait_for(ready.exists, timeout_s=5, message="the trap to be set")
    assert control.send(token, control.Command(control.STOP))
    runner.join(timeout=10)
    assert (results[0].cause, results[0].exit_code, results[0].signal) == (EndCause.STOPPED, 7, None)
    assert read(tmp_path / "out.txt") == "term\n"


def test_a_stop_works_with_sigint_ignored_and_reaches_the_whole_group(tmp_path: Path) -> None:
    """What nohup or `setsid ... &` from a script leave: SIGINT ignored, so no Ray cancel could land."""
    token, pids = _token(), tmp_path / "pids"
    script = f"#!/bin/bash\nsleep 300 &\necho $! > {pids}\nwait\n"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        runner, results = _running(tmp_path, script, token)
        child = int(wait_for(lambda: pids.exists() and read(pids).strip(), timeout_s=5))
        wait_for(lambda: control.send(token, control.Command(control.STOP)), timeout_s=5)
        runner.join(timeout=10)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert results[0].cause is EndCause.STOPPED
    wait_for(lambda: not pid_alive(child), timeout_s=2, message="the script's sleep to die with its group")


def test_a_channel_that_nobody_listens_on_refuses_the_message() -> None:
    assert control.send(_token(), control.Command(control.STOP)) is False


# ---- who the script runs as (conductor.executor.identity; other users: tests/acceptance/test_users.py) ------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching a job's Unix identity needs root")


def test_output_is_appended_with_append_output(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("before\n")
    assert run(tmp_path, "#!/bin/bash\necho after\n", append_output=True).exit_code == 0
    assert read(tmp_path / "out.txt") == "before\nafter\n"


def test_a_user_without_an_account_on_the_node_fails_at_launch(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\ntrue\n", run_as="no-such-user-x9", environment={"SLURMD_NODENAME": "n7"})
    assert (result.cause, result.detail) == (EndCause.LAUNCH_FAILED, "user no-such-user-x9 has no Unix account on node n7")
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
    assert (result.cause, result.detail) == (EndCause.LAUNCH_FAILED,
                                             f"cannot write the stderr file {tmp_path}/missing/e (as root on node n7)")
    assert (result.exit_code, list(tmp_path.iterdir())) == (None, [])


@needs_root
def test_a_working_directory_that_cannot_be_entered_fails_the_launch(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\ntrue\n", run_as="root", working_dir=str(tmp_path / "gone"))
    assert result.cause is EndCause.LAUNCH_FAILED
    assert result.detail.startswith(f"cannot enter the working directory {tmp_path}/gone (as root on node ")
    assert list(tmp_path.iterdir()) == []


@needs_root
def test_run_as_a_user_keeps_the_time_limit_and_the_group_kill(tmp_path: Path) -> None:
    result = run(tmp_path, "#!/bin/bash\n(sleep 60; echo leaked) &\necho $! > child.pid\nsleep 60\n",
                 run_as="root", time_limit_s=1, kill_wait_s=0.5)
    assert (result.cause, result.signal) == (EndCause.TIMEOUT, signal.SIGTERM)
    child = int(read(tmp_path / "child.pid"))  # SIGKILLed with the group; reaped by init a moment later
    wait_for(lambda: not pid_alive(child), timeout_s=5, message=f"process {child} to die")
