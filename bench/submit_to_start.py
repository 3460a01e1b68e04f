"""Submit -> start latency on an idle node, and the seed's concurrency scenario, per backend.

Prints, for each backend (PostgreSQL + Redis, SQLite + embedded queue):
  * submit->RUNNING: the job's start_time minus its submit_time (the scheduler's reaction),
  * submit->script:  when the script itself ran (it writes its clock) minus submit_time,
and, as the baseline measured in the same run, the latency of a plain Ray task submitted
from a driver to its first line running.  Then the seed's scenario (4 jobs x 4 CPUs x 8G,
sleep 2 s) with WORKER_CONCURRENCY=4 and =1: makespan of the batch.

Then, through REST (``--rest``, the issue's target): a real ``conductor up`` per backend on a node
declared with 32 CPUs, one keep-alive client submitting one job at a time (``POST
/api/jobs/submit``), each waited for to end before the next: REST submit -> the script's own clock
(``$EPOCHREALTIME``), p50 and p99, beside a plain Ray task that runs the same bash script with
subprocess, submitted from a driver.

Run:  .venv/bin/python bench/submit_to_start.py [--jobs 40] [--rest 200] [--only-rest]
Needs PostgreSQL and Redis on 127.0.0.1 (skips that backend when absent).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import ray
import redis
from sqlalchemy import create_engine, text

from conductor import jobs
from conductor.scheduler import handle as scheduler
from conductor.config import Settings
from conductor.service import JobService

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/8"


def _p50_p99(values_ms: list[float]) -> str:
    ordered = sorted(values_ms)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):7.1f} ms   p99 {p99:7.1f} ms   max {ordered[-1]:7.1f} ms"


def _percentiles(values_ms: list[float]) -> str:
    ordered = sorted(values_ms)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms   max {ordered[-1]:7.1f} ms"


def _wait(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark job did not finish")
        time.sleep(0.002)


def ray_baseline(count: int) -> list[float]:
    @ray.remote(num_cpus=1)
    def first_line() -> float:
        return time.time()

    ray.get([first_line.remote() for _ in range(4)])  # warm workers, as the scheduler does
    latencies = []
    for _ in range(count):
        sent = time.time()
        latencies.append((ray.get(first_line.remote()) - sent) * 1000)
    return latencies


SCRIPT = "#!/bin/bash\necho $EPOCHREALTIME > {marker}\n"


def ray_script_baseline(count: int, workdir: Path) -> list[float]:
    """A plain Ray task running the job's bash script with subprocess: submit -> the script's clock."""
    import os
    import subprocess

    @ray.remote(num_cpus=1, memory=100 * 1024**2, max_retries=0)
    def run(script: str) -> int:
        return subprocess.run(["/bin/bash", script], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}).returncode

    latencies = []
    for i in range(count + 5):  # the first five warm the workers
        marker = workdir / f"ray{i}"
        script = workdir / f"ray{i}.sh"
        script.write_text(SCRIPT.format(marker=marker))
        sent = time.time()
        ray.get(run.remote(str(script)))
        if i >= 5:
            latencies.append((float(marker.read_text()) - sent) * 1000)
    return latencies


def rest_latency(count: int, workdir: Path, database_url: str = "", redis_url: str = "") -> list[float]:
    """REST submit -> the script's clock, one job at a time on an idle node of a real ``conductor up``."""
    import sys

    import httpx

    sys.path.insert(0, str(Path(__file__).parent))
    import burst

    command = str(Path(sys.executable).with_name("conductor"))
    latencies = []
    with burst.conductor_up(command, workdir, database_url, redis_url) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        for i in range(count + 5):  # the first five warm the workers and the connection
            marker = workdir / f"rest{i}"
            body = {"job": {"name": "lat", "cpus_per_task": 1, "memory_per_node": 100,
                            "current_working_directory": str(workdir)}, "script": SCRIPT.format(marker=marker)}
            sent = time.time()
            reply = client.post("/api/jobs/submit", json=body)
            reply.raise_for_status()
            job_id = reply.json()["job_id"]
            _wait(marker.exists, 30)
            _wait(lambda: client.get(f"/api/jobs/{job_id}").json()["state"] in ("COMPLETED", "FAILED"), 30)
            if i >= 5:
                latencies.append((float(marker.read_text()) - sent) * 1000)
    return latencies


def latency(settings: Settings, count: int, workdir: Path) -> tuple[list[float], list[float]]:
    service = JobService.from_settings(settings)
    handle = scheduler.get_or_create(settings)
    scheduler.start(handle)
    to_running, to_script = [], []
    try:
        for i in range(count):
            marker = workdir / f"t{i}"
            job = service.submit(jobs.JobSpec(script=f"#!/bin/bash\ndate +%s.%N > {marker}\n", name="lat",
                                              user="bench", working_dir=str(workdir)))
            _wait(lambda: service.get(job.id).state.is_terminal())
            done = service.get(job.id)
            to_running.append((done.start_time - done.submit_time).total_seconds() * 1000)
            to_script.append((float(marker.read_text()) - done.submit_time.timestamp()) * 1000)
    finally:
        ray.get(handle.stop.remote())
        ray.kill(handle, no_restart=True)
        service.close()
    return to_running, to_script


def seed_scenario(settings: Settings, workdir: Path) -> float:
    service = JobService.from_settings(settings)
    handle = scheduler.get_or_create(settings)
    scheduler.start(handle)
    try:
        ids = [service.submit(jobs.JobSpec(script="#!/bin/bash\nsleep 2\n", name=f"concurrent-job-{i}",
                                           cpus_per_task=4, memory_per_node_mb=8192, user="bench",
                                           working_dir=str(workdir))).id for i in range(4)]
        _wait(lambda: all(j.state.is_terminal() for j in service.repository.get_many(ids)))
        done = service.repository.get_many(ids)
        return (max(j.end_time for j in done) - min(j.submit_time for j in done)).total_seconds()
    finally:
        ray.get(handle.stop.remote())
        ray.kill(handle, no_restart=True)
        service.close()


@contextlib.contextmanager
def backends(workdir: Path) -> Iterator[dict[str, dict]]:
    """SQLite always; PostgreSQL + Redis when reachable (a scratch database, dropped afterwards)."""
    found = {"sqlite + embedded queue": {"database_url": f"sqlite:///{workdir / 'bench.db'}"}}
    name = f"conductor_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        redis.Redis.from_url(REDIS).ping()
        found["postgresql + redis"] = {"database_url": PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", "redis_url": REDIS}
    except Exception as exc:  # noqa: BLE001
        print(f"(PostgreSQL + Redis unavailable, skipped: {exc})")
    try:
        yield found
    finally:
        with contextlib.suppress(Exception), admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(REDIS)
            for key in client.scan_iter("conductor:bench-*"):
                client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="sequential jobs per latency run")
    parser.add_argument("--rest", type=int, default=0, help="sequential REST submits per backend (0: none)")
    parser.add_argument("--only-rest", action="store_true", help="only the REST latency and its baseline")
    args = parser.parse_args()
    import os

    print(f"# load before: {os.getloadavg()[0]:.2f}")
    if not args.only_rest:
        ray.init(address="local", num_cpus=32, _memory=64 * 1024**3, object_store_memory=256 * 1024**2, include_dashboard=False,
                 log_to_driver=False)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            print(f"baseline  plain Ray task, submit->first line:   {_percentiles(ray_baseline(args.jobs))}")
            with backends(workdir) as found:
                _run_backends(found, workdir, args.jobs)
        ray.shutdown()
    if args.rest:
        _rest(args.rest)
    print(f"# load after: {os.getloadavg()[0]:.2f}")


def _rest(count: int) -> None:
    ray.init(address="local", num_cpus=32, _memory=64 * 1024**3, object_store_memory=256 * 1024**2, include_dashboard=False,
             log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = ray_script_baseline(count, Path(tmp))
    ray.shutdown()
    print(f"baseline  plain Ray task running the script, submit->script:  {_p50_p99(baseline)}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with backends(workdir) as found:
            for label, urls in found.items():
                run_dir = workdir / label.split()[0]
                run_dir.mkdir()
                figures = rest_latency(count, run_dir, urls["database_url"].replace(
                    f"sqlite:///{workdir / 'bench.db'}", ""), urls.get("redis_url", ""))
                print(f"{label:24s} REST submit->script:    {_p50_p99(figures)}")


def _run_backends(found: dict[str, dict], workdir: Path, count: int) -> None:
    for label, urls in found.items():
        base = dict(state_dir=workdir / "state", kill_wait_s=2, **urls)
        settings = Settings(ray_namespace=f"bench-{uuid.uuid4().hex[:6]}", worker_concurrency=4, **base)
        running, script = latency(settings, count, workdir)
        print(f"{label:24s} submit->RUNNING:   {_percentiles(running)}")
        print(f"{label:24s} submit->script:    {_percentiles(script)}")
        for concurrency in (4, 1):
            settings = Settings(ray_namespace=f"bench-{uuid.uuid4().hex[:6]}", worker_concurrency=concurrency, **base)
            makespan = seed_scenario(settings, workdir)
            print(f"{label:24s} seed scenario 4 x (4 CPU, 8G, sleep 2 s), WORKER_CONCURRENCY={concurrency}: "
                  f"{makespan:5.2f} s from first submit to last end")


if __name__ == "__main__":
    main()
