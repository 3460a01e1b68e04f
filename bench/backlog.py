"""Depth of the queue: drain rate, pass time, scheduler RSS and query times at N pending jobs.

For each depth N (``--depths``), on a real ``conductor up`` with a node declared with 32 CPUs
(WORKER_CONCURRENCY=32): a 32-CPU job holds the node, N trivial one-CPU jobs are batch-submitted
behind it (1,000 a request), and once the scheduler holds all of them:

  * the time of a full scheduling pass at that depth (every pending job's reason: the scheduler's
    own ``last_full_pass_duration_s`` from ``GET /api/status``, the largest sampled over 12 s);
  * the scheduler actor's RSS;
  * ``GET /api/queue``, ``GET /api/jobs?state=PENDING&limit=100`` and ``conductor queue -t PD | head``
    (median of 5 each);

then the holder ends and the backlog drains: the drain rate over the first min(N, 3,000) jobs and
over all N (from the clocks the scripts write), and the passes run for events meanwhile (quick
passes: ``last_pass_duration_s`` sampled every 0.25 s while the first jobs drain, median and max).  The issue's floor: the rate at 100,000 >= 90% of
the rate at 1,000, a pass <= 50 ms, RSS <= 400 MB, each query <= 200 ms.

Run:  .venv/bin/python bench/backlog.py [--depths 1000,10000,100000] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import contextlib
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


def depth(count: int, backend: str, *, drain_all: bool = True) -> dict[str, float]:
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
    options = parser.parse_args()
    print(f"# bench/backlog.py on {options.backend}; load before: {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'pending':>8s} {'submit s':>9s} {'intake s':>9s} {'pass p50':>9s} {'pass max':>9s} {'full pass':>10s} "
          f"{'RSS MB':>7s} {'/api/queue':>11s} {'list 100':>9s} {'queue|head':>11s} {'drain/s first':>14s} "
          f"{'drain/s all':>12s}")
    for count in (int(d) for d in options.depths.split(",")):
        f = depth(count, options.backend, drain_all=not options.first_only)
        print(f"{count:8d} {f['submit_s']:9.1f} {f['intake_s']:9.1f} {f['pass_p50_ms']:7.1f}ms {f['pass_max_ms']:7.1f}ms "
              f"{f['full_pass_ms']:8.1f}ms {f['rss_mb']:7.0f} "
              f"{f['queue_ms']:9.0f}ms {f['list_ms']:7.0f}ms {f['cli_ms']:9.0f}ms {f['drain_first_per_s']:14.1f} "
              f"{f['drain_all_per_s']:12.1f}", flush=True)
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
