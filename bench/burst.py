"""A burst of trivial jobs on a 32-CPU node: conductor against plain Ray tasks, in one run.

Paths, each on a fresh Ray with a node declared with 32 CPUs (and 64 GiB), WORKER_CONCURRENCY=32:

  (a) plain Ray: one ``.remote()`` per job (num_cpus=1, memory=100 MB), each running the job's
      bash script with subprocess: the baseline;
  (b) conductor, single REST submits (``POST /api/jobs/submit``) from one keep-alive client;
  (c) conductor, the batch endpoint (``POST /api/jobs/batch``, up to 1,000 jobs a request);

(b) and (c) on SQLite + the embedded queue and on PostgreSQL + Redis, each against a real
``conductor up`` started for the path.  Every job's script writes its start clock
(``$EPOCHREALTIME``, a bash builtin: no extra process).  Reported per path: done jobs/s (first
submit to the last script's clock), p50/p95 submit->start, and the raw rate of spawning
``bash -c true`` from one Python process, measured in the same run (the physical limit here).

Run:  .venv/bin/python bench/burst.py [--jobs 1000] [--repeat 3] [--paths ray,sqlite-single,...]
      [--conductor PATH/TO/conductor]  (another checkout's command, to measure before a change)
Needs PostgreSQL and Redis on 127.0.0.1 for the postgres paths (skipped when absent).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/8"
NODE_CPUS, NODE_MEMORY = 32, "64G"
JOB_MEMORY_MB = 100
SCRIPT = "#!/bin/bash\necho $EPOCHREALTIME > {marks}/$SLURM_JOB_ID\n"
PATHS = ("ray", "sqlite-single", "sqlite-batch", "postgres-single", "postgres-batch")


@dataclass
class Figures:
    path: str
    jobs_per_s: float
    p50_ms: float
    p95_ms: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes() -> dict[int, str]:
    """Every process on this host: pid -> command line (``ps``); a diff finds what a run started."""
    rows = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return {int(line.split(None, 1)[0]): (line.split(None, 1) + [""])[1] for line in rows.splitlines() if line.strip()}


def rss_mb(pid: int) -> float:
    """A process's resident memory in MiB (statm)."""
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024) / 1024


def spawn_rate(count: int = 300) -> float:
    """``bash -c true`` spawned and waited for, one after another, per second."""
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(["bash", "-c", "true"], check=True)
    return count / (time.perf_counter() - started)


def figures(path: str, submitted: dict[str, float], marks: Path) -> Figures:
    """Done jobs/s and submit->start from the clocks the scripts wrote (file name: job key)."""
    starts = {name: float(marks.joinpath(name).read_text()) for name in submitted}
    latencies = sorted((starts[name] - submitted[name]) * 1000 for name in submitted)
    elapsed_s = max(starts.values()) - min(submitted.values())
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    return Figures(path, len(submitted) / elapsed_s, statistics.median(latencies), p95)


def wait_for_marks(marks: Path, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(1 for _ in marks.iterdir()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {sum(1 for _ in marks.iterdir())} of {count} jobs ran in {timeout_s} s")
        time.sleep(0.05)


# -- (a) plain Ray -------------------------------------------------------------------------------

def plain_ray(count: int, work: Path) -> Figures:
    import ray

    marks = work / "marks"
    marks.mkdir()
    script = work / "job.sh"
    script.write_text(SCRIPT.format(marks=marks))
    ray.init(address="local", num_cpus=NODE_CPUS, _memory=64 * 1024**3, include_dashboard=False,
             log_to_driver=False, object_store_memory=256 * 1024**2)
    try:
        @ray.remote(num_cpus=1, memory=JOB_MEMORY_MB * 1024**2, max_retries=0)
        def run(job_id: int) -> int:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SLURM_JOB_ID": str(job_id)}
            return subprocess.run(["/bin/bash", str(script)], env=env, cwd=str(work)).returncode

        ray.get([run.options(num_cpus=0).remote(0) for _ in range(8)])  # warm workers, as conductor does
        for mark in marks.iterdir():
            mark.unlink()
        submitted, refs = {}, []
        for job_id in range(1, count + 1):
            submitted[str(job_id)] = time.time()
            refs.append(run.remote(job_id))
        ray.get(refs)
        return figures("ray", submitted, marks)
    finally:
        ray.shutdown()


# -- (b), (c) conductor --------------------------------------------------------------------------

@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"conductor_burst_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def conductor_up(command: str, work: Path, database_url: str = "", redis_url: str = "") -> Iterator[str]:
    """A real ``conductor up`` on its own port, state directory and Ray; stopped by its pid, with all it started."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(API_PORT=str(port), STATE_DIR=str(work / "state"), TOTAL_CPUS=str(NODE_CPUS),
               TOTAL_MEMORY=NODE_MEMORY, WORKER_CONCURRENCY=str(NODE_CPUS), RAY_DASHBOARD_PORT=str(free_port()),
               RAY_NAMESPACE=f"burst-{uuid.uuid4().hex[:8]}", LOG_LEVEL="WARNING", NODE_NAME="burst-node",
               SHUTDOWN_RUNNING_JOBS="requeue")  # SIGTERM then ends its jobs and its Ray, whatever still runs
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    log = open(work / "up.log", "wb")
    process = subprocess.Popen([command, "up"], env=env, cwd=str(work), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/ready", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"conductor up did not become ready: {(work / 'up.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _job(marks: Path, work: Path, index: int) -> dict:
    return {"job": {"name": f"b{index}", "cpus_per_task": 1, "memory_per_node": JOB_MEMORY_MB,
                    "current_working_directory": str(work)}, "script": SCRIPT.format(marks=marks)}


def conductor_path(name: str, count: int, command: str, work: Path) -> Figures:
    backend, _, mode = name.partition("-")
    marks = work / "marks"
    marks.mkdir()
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres_database()) if backend == "postgres" else ""
        url = stack.enter_context(conductor_up(command, work, database_url, REDIS if backend == "postgres" else ""))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=120))
        submit = _submit_batch if mode == "batch" else _submit_single
        submitted = submit(client, [_job(marks, work, i) for i in range(count)])
        wait_for_marks(marks, count, timeout_s=600)
        return figures(name, submitted, marks)


def _submit_single(client: httpx.Client, bodies: list[dict]) -> dict[str, float]:
    submitted = {}
    for body in bodies:
        sent = time.time()
        reply = client.post("/api/jobs/submit", json=body)
        reply.raise_for_status()
        submitted[str(reply.json()["job_id"])] = sent
    return submitted


def _submit_batch(client: httpx.Client, bodies: list[dict], per_request: int = 1000) -> dict[str, float]:
    submitted = {}
    for first in range(0, len(bodies), per_request):
        sent = time.time()
        reply = client.post("/api/jobs/batch", json={"jobs": bodies[first:first + per_request]})
        reply.raise_for_status()
        submitted.update({str(job_id): sent for job_id in reply.json()["job_ids"]})
    return submitted


def run_path(name: str, count: int, command: str) -> Figures:
    with tempfile.TemporaryDirectory(prefix=f"burst-{name}-") as directory:
        work = Path(directory)
        if name == "ray":
            return plain_ray(count, work)
        return conductor_path(name, count, command, work)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of every path; medians are printed")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--conductor", default=str(Path(sys.executable).with_name("conductor")),
                        help="the conductor command to measure (default: this virtualenv's)")
    parser.add_argument("--before", default="",
                        help="another checkout's conductor command, measured in the same rounds (rows '[before]')")
    options = parser.parse_args(argv)
    paths = [p for p in options.paths.split(",") if p]
    if options.before:
        paths = [q for p in paths for q in ([p] if p == "ray" else [p, f"{p} [before]"])]
    print(f"# bench/burst.py: {options.jobs} jobs, {options.repeat} run(s) per path, conductor {options.conductor}"
          + (f", before {options.before}" if options.before else ""))
    print(f"# load before: {os.getloadavg()[0]:.2f}")
    results: dict[str, list[Figures]] = {p: [] for p in paths}
    spawn: list[float] = []
    for run in range(options.repeat):
        spawn.append(spawn_rate())
        for path in paths:
            command = options.before if path.endswith(" [before]") else options.conductor
            figures_ = run_path(path.removesuffix(" [before]"), options.jobs, command)
            figures_.path = path
            results[path].append(figures_)
            print(f"  run {run + 1} {path:25s} {figures_.jobs_per_s:7.1f} jobs/s   submit->start p50 "
                  f"{figures_.p50_ms:7.1f} ms  p95 {figures_.p95_ms:8.1f} ms", flush=True)
    report(results, statistics.median(spawn))
    print(f"# load after: {os.getloadavg()[0]:.2f}")


def report(results: dict[str, list[Figures]], spawn_per_s: float) -> None:
    median: Callable[[list[float]], float] = statistics.median
    baseline = median([f.jobs_per_s for f in results["ray"]]) if results.get("ray") else None
    print(f"\nraw spawn of `bash -c true` from one Python process: {spawn_per_s:.0f}/s")
    print(f"{'path':25s} {'done jobs/s':>11s} {'x plain Ray':>11s} {'% of spawn':>10s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for path, runs in results.items():
        rate = median([f.jobs_per_s for f in runs])
        ratio = f"{rate / baseline:11.2f}" if baseline else f"{'-':>11s}"
        print(f"{path:25s} {rate:11.1f} {ratio} {100 * rate / spawn_per_s:9.0f}% "
              f"{median([f.p50_ms for f in runs]):8.1f} {median([f.p95_ms for f in runs]):8.1f}")


if __name__ == "__main__":
    main()
