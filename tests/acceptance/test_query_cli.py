"""``conductor queue``, ``history``, ``show`` and ``logs`` run as a user runs them, against a real API server.

The server is uvicorn serving ``create_app`` on SQLite in a thread of the test process; jobs are
stored and moved through the same database with the repository (no Ray: nothing runs them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, update

from api.app import create_app
from conductor import jobs
from conductor.config import Settings
from conductor.db.models import JobRow
from conductor.db.session import make_engine
from conductor.service import JobService
from conductor.resources import Allocation, Resources
from tests.helpers import allocation, api_answers, free_port, node, spec, wait_for

CONDUCTOR = str(Path(sys.executable).with_name("conductor"))
QUEUE_HEADER = ["JOBID", "PARTITION", "NAME", "USER", "ACCOUNT", "ST", "TIME", "CPUS", "PRIORITY", "NODE(REASON)"]
HISTORY_HEADER = ["JobID", "JobName", "Partition", "Account", "AllocCPUS", "State", "ExitCode", "Start", "End",
                  "Elapsed", "CPUTime", "TotalCPU", "MaxRSS"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The API on a free port, a service on the same SQLite file, and the CLI's environment."""
    state = tmp_path_factory.mktemp("query-state")
    settings = Settings(state_dir=state, database_url=f"sqlite:///{state / 'conductor.db'}", node_name="n1")
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: api_answers(url), 30, interval_s=0.1)
    service = JobService.from_settings(settings)
    engine = make_engine(settings.effective_database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(CONDUCTOR_URL=url, CONDUCTOR_STATE_DIR=str(state))
    try:
        yield {"service": service, "engine": engine, "env": env, "url": url}
    finally:
        service.close()
        engine.dispose()
        uv.should_exit = True
        thread.join(timeout=10)


def _conductor(server: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CONDUCTOR, *args], env=server["env"], cwd=cwd or Path.cwd(), capture_output=True,
                          text=True, timeout=60)


def _ok(server: dict, *args: str) -> str:
    result = _conductor(server, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _user() -> str:
    """A user name of its own for each test: the module's jobs share one database."""
    return f"u{uuid.uuid4().hex[:8]}"


def _submit(server: dict, user: str, **fields: object) -> int:
    return server["service"].submit(spec("#!/bin/bash\ntrue\n", user=user, **fields)).id


def _start(server: dict, job_id: int, *, ran_s: float = 0) -> None:
    assert server["service"].repository.start_jobs([allocation(job_id, 1, 0)]) == {job_id}
    if ran_s:
        _set(server["engine"], job_id, start_time=datetime.now().astimezone() - timedelta(seconds=ran_s))


def _set(engine: Engine, job_id: int, **values: object) -> None:
    with engine.begin() as connection:
        connection.execute(update(JobRow).where(JobRow.id == job_id).values(**values))


def test_queue_prints_one_header_and_squeue_rows(server: dict) -> None:
    user = _user()
    waiting = _submit(server, user, name="waiting", account="phys", cpus_per_task=2)
    running = _submit(server, user, name="busy", partition="gpu")
    done = _submit(server, user, name="done")
    server["service"].repository.set_pending_reasons({jobs.Reason.RESOURCES: [waiting]})
    _start(server, running, ran_s=3665)
    _start(server, done)
    server["service"].repository.finish_job(done, jobs.Ending(jobs.JobState.COMPLETED, jobs.Reason.NONE, exit_code=0))
    lines = _ok(server, "queue", "-u", user).splitlines()
    assert lines[0].split() == QUEUE_HEADER and "\x1b" not in "".join(lines)
    rows = [line.split() for line in lines[1:]]
    assert rows[0][:8] + rows[0][9:] == [str(waiting), "default", "waiting", user, "phys", "PD", "0:00", "2",
                                         "(Resources)"]
    assert int(rows[0][8]) >= 1000  # its priority: an account with no usage has fair share 1 (weight 1000)
    assert rows[1][:5] == [str(running), "gpu", "busy", user, "R"]  # an empty ACCOUNT is blank
    assert re.fullmatch(r"1:01:0\d", rows[1][5]) and rows[1][6:] == ["1", "-", "n1"], rows[1]  # TIME ticks
    assert len(rows) == 2
    assert lines[0].index("NODE(REASON)") == lines[1].index("(Resources)")  # aligned columns
    everything = _ok(server, "queue", "-u", user, "-t", "all", "--noheader").splitlines()
    assert [line.split()[0] for line in everything] == [str(waiting), str(running), str(done)]
    finished = _ok(server, "queue", "-u", user, "-t", "CD").splitlines()
    assert [line.split()[:5] for line in finished[1:]] == [[str(done), "default", "done", user, "CD"]]


def test_queue_json_and_filters(server: dict) -> None:
    user = _user()
    first = _submit(server, user, name="a")
    second = _submit(server, user, name="b")
    listed = json.loads(_ok(server, "queue", "-u", user, "--json"))["jobs"]
    assert [(job["job_id"], job["state"], job["user"]) for job in listed] == [(first, "PENDING", user),
                                                                               (second, "PENDING", user)]
    assert [j["job_id"] for j in json.loads(_ok(server, "queue", "-n", "b", "-u", user, "--json"))["jobs"]] == [
        second]
    assert [j["job_id"] for j in json.loads(_ok(server, "queue", "-j", f"{second},{first}", "--json"))["jobs"]] == [
        first, second]


def test_history_shows_elapsed_cpu_time_and_max_rss(server: dict) -> None:
    user = _user()
    job_id = _submit(server, user, name="train", account="phys", cpus_per_task=2)
    _submit(server, user, name="still-pending")
    _start(server, job_id)
    server["service"].repository.finish_job(job_id, jobs.Ending(
        jobs.JobState.FAILED, jobs.Reason.NON_ZERO_EXIT, exit_code=3,
        usage=jobs.Usage(cpu_time_user_s=1.5, cpu_time_system_s=0.25, max_rss_kb=2048)))
    end = server["service"].get(job_id).end_time
    _set(server["engine"], job_id, start_time=end - timedelta(seconds=65))
    lines = _ok(server, "history", "-u", user).splitlines()
    assert lines[0].split() == HISTORY_HEADER
    assert len(lines) == 2, lines
    row = lines[1].split()
    assert row[:7] == [str(job_id), "train", "default", "phys", "2", "FAILED", "3:0"]
    assert row[7] == (end - timedelta(seconds=65)).astimezone().strftime("%Y-%m-%dT%H:%M:%S")
    assert row[9:] == ["00:01:05", "00:02:10", "00:01.750", "2048K"]
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%d")
    assert _ok(server, "history", "-u", user, "--since", tomorrow, "--noheader") == ""
    listed = json.loads(_ok(server, "history", "-j", str(job_id), "-S", "2000-01-01T00:00", "--json"))["jobs"]
    assert [(job["job_id"], job["exit_code"]) for job in listed] == [(job_id, "3:0")]


def test_history_counts_every_node_of_a_multi_node_job(server: dict) -> None:
    """A -N 2 job holding 3 CPUs per node: AllocCPUS 6, CPUTime = Elapsed x 6 (sacct counts the whole job)."""
    user = _user()
    job_id = _submit(server, user, name="wide", account="wide", cpus_per_task=3, nodes=2)
    b1, b2 = node("b1", 8, 8192), node("b2", 8, 8192)
    assert server["service"].repository.start_jobs([Allocation(job_id, (b1, b2), Resources(3, 0))]) == {job_id}
    server["service"].repository.finish_job(job_id, jobs.Ending(jobs.JobState.COMPLETED, jobs.Reason.NONE,
                                                                exit_code=0))
    end = server["service"].get(job_id).end_time
    _set(server["engine"], job_id, start_time=end - timedelta(seconds=10))
    row = _ok(server, "history", "-u", user, "--noheader").split()
    assert (row[4], row[9], row[10]) == ("6", "00:00:10", "00:01:00"), row
    shown = _ok(server, "show", str(job_id))
    assert "NumNodes=2 NumCPUs=6 NumTasks=2 CPUs/Task=3" in shown


def test_show_prints_scontrol_key_values(server: dict) -> None:
    user = _user()
    account = f"acct-{user}"  # an account of its own: no other test's jobs give it usage (fair share 1 below)
    job_id = _submit(server, user, name="train", memory_per_node_mb=8192, time_limit_s=3600, cpus_per_task=4,
                     account=account)
    server["service"].repository.set_pending_reasons({jobs.Reason.PRIORITY: [job_id]})
    text = _ok(server, "show", str(job_id))
    assert text.startswith(f"JobId={job_id} JobName=train\n   UserId={user} Account={account}\n")
    pairs = dict(item.split("=", 1) for item in text.split())
    assert {key: pairs[key] for key in ("JobState", "Reason", "ExitCode", "RunTime", "TimeLimit", "NodeList",
                                        "NumCPUs", "MinMemoryNode", "Requeue", "Restarts", "StartTime")} == {
        "JobState": "PENDING", "Reason": "Priority", "ExitCode": "0:0", "RunTime": "00:00:00",
        "TimeLimit": "01:00:00", "NodeList": "(null)", "NumCPUs": "4", "MinMemoryNode": "8G", "Requeue": "1",
        "Restarts": "0", "StartTime": "Unknown"}
    assert {"SubmitTime", "EndTime", "WorkDir", "StdOut", "StdErr", "Priority", "Nice", "Partition", "TotalCPU",
            "MaxRSS", "UserCPU", "SystemCPU"} <= set(pairs)
    assert "\n" not in _ok(server, "show", str(job_id), "-o").strip()
    # sprio's factors of a pending job: fair share 1 (no usage), priority = their weighted sum
    assert pairs["FairShare"] == "1.0" and pairs["PriorityFactors"].startswith("Age=")
    assert int(pairs["Priority"]) >= 1000 and pairs["AdminPriority"] == "0"
    as_json = json.loads(_ok(server, "show", str(job_id), "--json"))
    assert as_json == httpx.get(f"{server['url']}/api/jobs/{job_id}").json()


def test_logs_prints_the_output_file(server: dict, tmp_path: Path) -> None:
    job_id = _submit(server, _user(), working_dir=str(tmp_path), stderr_pattern="err-%j.txt")
    _start(server, job_id)
    (tmp_path / f"slurm-{job_id}.out").write_bytes("hello\nwörld\n".encode())
    (tmp_path / f"err-{job_id}.txt").write_text("oops\n")
    assert _ok(server, "logs", str(job_id)) == "hello\nwörld\n"
    assert _ok(server, "logs", str(job_id), "--err") == "oops\n"


def test_logs_follow_prints_appended_output_until_the_job_ends(server: dict, tmp_path: Path) -> None:
    job_id = _submit(server, _user(), working_dir=str(tmp_path))
    out = tmp_path / f"slurm-{job_id}.out"
    follower = subprocess.Popen([CONDUCTOR, "logs", str(job_id), "-f"], env=server["env"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.7)  # the follower has polled the pending job at least once
        _start(server, job_id)
        out.write_text("first\n")
        time.sleep(0.7)
        with out.open("a") as handle:
            handle.write("second\n")
        assert follower.poll() is None  # still following: the job runs
        server["service"].repository.finish_job(job_id, jobs.Ending(jobs.JobState.COMPLETED, jobs.Reason.NONE, exit_code=0))
        stdout, stderr = follower.communicate(timeout=10)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert (follower.returncode, stdout, stderr) == (0, "first\nsecond\n", "")


@pytest.mark.parametrize(("args", "message"), [
    (["queue", "-t", "SLEEPING"], "conductor: error: state: 'SLEEPING' is not a job state"),
    (["queue", "-j", "1,x"], "conductor: error: -j/--jobs: '1,x' is not a comma list of job ids"),
    (["queue", "--colour"], "conductor: error: No such option: --colour"),
    (["history", "--since", "last tuesday"], "conductor: error: --since: 'last tuesday' is not a time"),
    (["history", "-s", "R"], "conductor: error: --state: history lists finished jobs"),
    (["show", "999999"], "conductor: error: job 999999 does not exist"),
    (["show", "abc"], "conductor: error: 'abc' is not a job id"),
    (["show", "42420_4"], "conductor: error: job 42420_4 does not exist"),
    (["show", "4_2_4"], "conductor: error: '4_2_4' is not a job id"),
    (["logs", "42420_4"], "conductor: error: job 42420_4 does not exist"),
    (["logs", "999999"], "conductor: error: job 999999 does not exist"),
])
def test_errors_are_one_line_and_non_zero(server: dict, args: list[str], message: str) -> None:
    result = _conductor(server, *args)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(message), result.stderr
    assert result.stdout == ""


def test_an_unreachable_api_is_one_line(server: dict) -> None:
    env = {**server["env"], "CONDUCTOR_URL": f"http://127.0.0.1:{free_port()}"}
    result = subprocess.run([CONDUCTOR, "queue"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.startswith("conductor: error: cannot reach the conductor API")


def test_partitions_prints_sinfo_rows(server: dict) -> None:

    server["service"].repository.replace_nodes([
        node("n1", 64, 131072, 0, {}, ray_node_id="ray-n1"),
        node("g1", 8, 16384, 2, {"conductor.io/partition": "gpu"}, ray_node_id="ray-g1")])
    lines = _ok(server, "partitions").splitlines()
    assert lines[0].split() == ["PARTITION", "AVAIL", "TIMELIMIT", "NODES", "CPUS(A/I/T)", "MEMORY(A/T)", "GPUS",
                                "JOBS(R/PD)", "NODELIST"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["gpu"][1:4] == ["up", "UNLIMITED", "1"] and rows["gpu"][6] == "2" and rows["gpu"][8] == "g1"
    assert rows["default*"][4].endswith("/64") and rows["default*"][8] == "n1"
    data = json.loads(_ok(server, "partitions", "--json"))
    assert {p["name"] for p in data["partitions"]} == {"default", "gpu"}


def test_queue_prints_page_by_page_and_stops_when_the_reader_does(server: dict) -> None:
    """More than one page (cli.query.PAGE_SIZE, the first FIRST_PAGE_SIZE): one header, every job once, in order, and `| head`
    ends the command at once (no traceback, exit 0) instead of it listing the rest."""
    from cli.query import PAGE_SIZE

    user = _user()
    service = server["service"]
    ids = [job.id for job in service.submit_many([spec("#!/bin/bash\ntrue\n", user=user, name=f"p{i}")
                                                  for i in range(PAGE_SIZE + 5)])]
    lines = _ok(server, "queue", "-u", user).splitlines()
    assert lines[0].split() == QUEUE_HEADER and sum(line.startswith("JOBID") for line in lines) == 1
    assert [int(line.split()[0]) for line in lines[1:]] == ids
    assert lines[0].index("NAME") == lines[-1].index(f"p{PAGE_SIZE + 4}")  # the first page's widths hold
    piped = subprocess.run(["bash", "-o", "pipefail", "-c", f"{CONDUCTOR} queue -u {user} | head -3"],
                           env=server["env"], capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == ""
    assert [line.split()[0] for line in piped.stdout.splitlines()] == ["JOBID", str(ids[0]), str(ids[1])]
