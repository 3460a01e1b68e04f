"""Depth of the queue: drain rate, pass time, scheduler RSS and query times at N pending jobs.

For each depth N (``--depths``), on a real ``conductor up`` with a node declared with 32 CPUs
(WORKER_CONCURRENCY=32): a 32-CPU job holds the node, N trivial one-CPU jobs are batch-submitted
behind it (1,000 a request), and once the scheduler holds all of them:

  * the time of a full scheduling pass at that depth (every pending job's reason: the scheduler's
    own ``last_full_pass_duration_s`` from ``GET /api/status``, the largest sampled over 12 s);
  * the scheduler actor's RSS;
  * ``GET /api/queue``, ``GET /api/jobs?state=PENDING&limit=100`` and ``conductor queue -t PD | head``
    (median of 5 each);

With ``--finished F`` the database first gets F finished jobs: up to 10,000 trivial jobs are
batch-submitted and run for real (rows, allocations and usage as conductor writes them), then their
rows are copied under new ids, each copy an hour earlier than the last, until there are F.  The
queries are then also timed over that history: ``GET /api/jobs?state=COMPLETED&limit=100`` (the
newest page: ``--sort`` of sacct), ``GET /api/status`` and ``GET /metrics`` (totals over every job).

then the holder ends and the backlog drains: the drain rate over the first min(N, 3,000) jobs and
over all N (from the clocks the scripts write), and the passes run for events meanwhile (quick
passes: ``last_pass_duration_s`` sampled every 0.25 s while the first jobs drain, median and max).  The issue's floor: the rate at 100,000 >= 90% of
the rate at 1,000, a pass <= 50 ms, RSS <= 400 MB, each query <= 200 ms.

Run:  .venv/bin/python bench/backlog.py [--depths 1000,10000,100000] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import burst  # noqa: E402 - the same conductor up, job body and batch submit as the burst

def _median_ms(action, runs: int = 5) -> float:  # noqa: ANN001 - a callable
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _wait(predicate, timeout_s: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


#: Finished jobs that run for real before the rest of ``--finished`` is made of copies of their rows.
SEED_JOBS = 10_000


def add_finished(client: httpx.Client, work: Path, database_url: str, count: int) -> float:
    """``count`` finished jobs in the database (see the module's text); returns the seconds it took."""
    from sqlalchemy import create_engine, func, select, text

    from conductor.db.models import AllocationRow, JobRow

    started = time.monotonic()
    seed = min(count, SEED_JOBS)
    marks = work / "seed-marks"
    marks.mkdir()
    burst._submit_batch(client, [burst._job(marks, work, i) for i in range(seed)])
    burst.wait_for_marks(marks, seed, timeout_s=1800)
    _wait(lambda: (lambda q: q["pending_jobs"] + q["running_jobs"])(client.get("/api/queue").json()) == 0, 300,
          "the seed jobs' ends to be recorded")
    engine = create_engine(database_url or f"sqlite:///{work / 'state' / 'conductor.db'}")
    jobs_table, allocations = JobRow.__table__, AllocationRow.__table__
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(select(jobs_table).order_by(jobs_table.c.id))]
        held = [dict(row._mapping) for row in connection.execute(select(allocations))]
    for row in held:
        del row["id"]
    stride = max(row["id"] for row in rows)
    hour = datetime.timedelta(hours=1)
    times = ("submit_time", "start_time", "end_time", "eligible_time")
    copy = 1
    while len(rows) * (copy + 1) <= count:
        shift = copy * hour
        with engine.begin() as connection:
            connection.execute(jobs_table.insert(), [
                {**row, "id": row["id"] + copy * stride,
                 **{name: row[name] - shift for name in times if row.get(name) is not None}} for row in rows])
            connection.execute(allocations.insert(), [
                {**row, "job_id": row["job_id"] + copy * stride, "allocated_at": row["allocated_at"] - shift,
                 "released_at": row["released_at"] - shift if row["released_at"] else None} for row in held])
        copy += 1
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT setval(pg_get_serial_sequence('jobs', 'id'), (SELECT max(id) FROM jobs))"))
        total = connection.scalar(select(func.count()).select_from(jobs_table))
    engine.dispose()
    print(f"# {total} jobs in the database ({seed} run, the rest copies) in {time.monotonic() - started:.0f} s",
          flush=True)
    return time.monotonic() - started


def depth(count: int, backend: str, *, drain_all: bool = True, finished: int = 0) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"backlog-{count}-") as directory, contextlib.ExitStack() as stack:
        work = Path(directory)
        marks = work / "marks"
        marks.mkdir()
        release = work / "release"
        database_url = stack.enter_context(burst.postgres_database()) if backend == "postgres" else ""
        before = burst.processes()
        command = str(Path(sys.executable).with_name("conductor"))
        url = stack.enter_context(burst.conductor_up(command, work, database_url,
                                                     burst.REDIS if backend == "postgres" else ""))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=600))
        scheduler = next(pid for pid, args in burst.processes().items()
                         if pid not in before and args.startswith("ray::Scheduler"))
        if finished:
            add_finished(client, work, database_url, finished)
        holder = client.post("/api/jobs/submit", json={
            "job": {"name": "holder", "cpus_per_task": burst.NODE_CPUS, "memory_per_node": 1000,
                    "current_working_directory": str(work)},
            "script": f"#!/bin/bash\nwhile [ ! -e {release} ]; do sleep 0.05; done\n"}).json()["job_id"]
        _wait(lambda: client.get(f"/api/jobs/{holder}").json()["state"] == "RUNNING", 60, "the holder to run")
        started = time.monotonic()
        burst._submit_batch(client, [burst._job(marks, work, i) for i in range(count)])
        submit_s = time.monotonic() - started
        _wait(lambda: client.get("/api/queue").json()["pending_jobs"] == count, 1800, "every job pending")
        _wait(lambda: (client.get("/api/status").json()["scheduler"].get("passes_per_minute") or 0) > 0, 60,
              "a pass")
        intake_s = time.monotonic() - started
        full_passes = []
        until = time.monotonic() + 12
        while time.monotonic() < until:
            full_passes.append(client.get("/api/status").json()["scheduler"].get("last_full_pass_duration_s") or 0.0)
            time.sleep(0.5)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
        env["CONDUCTOR_URL"] = url
        figures = {
            "submit_s": submit_s, "intake_s": intake_s, "full_pass_ms": 1000 * max(full_passes),
            "rss_mb": burst.rss_mb(scheduler),
            "queue_ms": _median_ms(lambda: client.get("/api/queue").raise_for_status()),
            "list_ms": _median_ms(lambda: client.get("/api/jobs", params={"state": "PENDING", "limit": 100})
                                  .raise_for_status()),
            "cli_ms": _median_ms(lambda: subprocess.run(f"{command} queue -t PD | head", shell=True, env=env,
                                                        capture_output=True, check=True)),
        }
        if finished:
            figures.update(
                done_ms=_median_ms(lambda: client.get("/api/jobs", params={"state": "COMPLETED", "limit": 100})
                                   .raise_for_status()),
                status_ms=_median_ms(lambda: client.get("/api/status").raise_for_status()),
                metrics_ms=_median_ms(lambda: client.get("/metrics").raise_for_status()))
        release.touch()
        released = time.time()
        passes = []
        while sum(1 for _ in marks.iterdir()) < min(count, 3000) and time.time() - released < 600:
            passes.append(client.get("/api/status").json()["scheduler"]["last_pass_duration_s"] or 0.0)
            time.sleep(0.25)
        figures["pass_p50_ms"] = 1000 * statistics.median(passes or [0.0])
        figures["pass_max_ms"] = 1000 * max(passes or [0.0])
        first = min(count, 3000)
        burst.wait_for_marks(marks, count if drain_all else first, timeout_s=7200)
        clocks = sorted(float(mark.read_text()) for mark in marks.iterdir())
        figures["drain_first_per_s"] = first / (clocks[first - 1] - released)
        figures["drain_all_per_s"] = count / (clocks[-1] - released) if drain_all else float("nan")
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", default="1000,10000,100000")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--first-only", action="store_true",
                        help="measure the drain over the first 3,000 jobs only, then stop (the rest stay pending)")
    parser.add_argument("--finished", type=int, default=0,
                        help="finished jobs in the database before the backlog (e.g. 1000000)")
    options = parser.parse_args()
    print(f"# bench/backlog.py on {options.backend}, {options.finished} finished jobs; "
          f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'pending':>8s} {'submit s':>9s} {'intake s':>9s} {'pass p50':>9s} {'pass max':>9s} {'full pass':>10s} "
          f"{'RSS MB':>7s} {'/api/queue':>11s} {'list 100':>9s} {'queue|head':>11s} {'drain/s first':>14s} "
          f"{'drain/s all':>12s}")
    for count in (int(d) for d in options.depths.split(",")):
        f = depth(count, options.backend, drain_all=not options.first_only, finished=options.finished)
        print(f"{count:8d} {f['submit_s']:9.1f} {f['intake_s']:9.1f} {f['pass_p50_ms']:7.1f}ms {f['pass_max_ms']:7.1f}ms "
              f"{f['full_pass_ms']:8.1f}ms {f['rss_mb']:7.0f} "
              f"{f['queue_ms']:9.0f}ms {f['list_ms']:7.0f}ms {f['cli_ms']:9.0f}ms {f['drain_first_per_s']:14.1f} "
              f"{f['drain_all_per_s']:12.1f}", flush=True)
        if options.finished:
            print(f"{'':8s} over {options.finished} finished: COMPLETED page {f['done_ms']:.0f} ms, "
                  f"/api/status {f['status_ms']:.0f} ms, /metrics {f['metrics_ms']:.0f} ms", flush=True)
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
