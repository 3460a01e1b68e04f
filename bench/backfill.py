"""Backfill: efficiency of a mixed burst of jobs on one 32-CPU node, backfill off and on.

One Ray node declared with 32 CPUs (and 64 GiB).  A seeded generator makes the same burst for
both modes: ``--jobs`` jobs (200) of 1-32 CPUs (mostly small: 80% 1-4, 12% 5-15, 8% 16-32),
each ``sleep`` 0.2-3 s, with an honest time limit: the sleep plus ``--margin-s``, rounded up
to a whole second as Slurm's limits are.  All are submitted at once (``JobService.submit_many``,
one transaction, one push), and the bench waits for all to end.  Then, from the database's
submit/start/end times:

  * makespan:    first submit -> last end,
  * ideal:       max(sum of CPUs x sleep / 32, longest sleep), the lower bound of the makespan,
  * efficiency:  ideal / makespan (issue 5's aim: >= 0.85 with backfill),
  * mean wait:   start - submit, over all jobs, and the longest wait of a job of >= 16 CPUs,
  * recorded use: sum of CPUs x (end - start) / (32 x makespan), which counts each job's
    start-up and end overhead as use, and the idle CPU-seconds while some job was still waiting
    (split into before and after the last start), to tell scheduling gaps from overhead,
  * the lags behind that overhead: start_time -> the Ray task began (``ray.timeline()``) ->
    the script's first line, and its last line -> end_time (the script writes bash's clock),
  * the policy alone: ``policy.plan_pass`` replayed on a simulated clock, with no overhead and
    with the run's mean lag per job, to tell the policy's losses from the runtime's.

Each mode gets its own SQLite database, state dir and Ray namespace, and its own scheduler
actor (stopped and killed after it), in the same Ray instance: the worker processes warmed
before the first mode serve both.  KILL_WAIT is ``--kill-wait-s`` (1 s), because a running
job's expected end is start + time limit + KILL_WAIT; WORKER_CONCURRENCY is 64, not a limit.
Priorities are the project's defaults (multifactor: at one age, larger jobs first).

Run:  .venv/bin/python bench/backfill.py [--jobs 200] [--seed 5] [--order off,on]
Exits non-zero only on errors (a job that did not complete, a timeout), not on missing the aim.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import ray

from conductor import executor, jobs, policy
from conductor.resources import Allocation, Node, Resources
from conductor.scheduler import handle as scheduler
from conductor.config import Settings
from conductor.service import JobService

NODE_CPUS = 32
NODE_MEMORY_MB = 64 * 1024
MEMORY_PER_CPU_MB = 512
WORKER_CONCURRENCY = 64  #: more than the node can run at once: never the limit
BIG_CPUS = 16  #: "a large job" for the longest-wait figure
#: The job: bash's own clock (a builtin, no extra process) before and after the sleep.
SCRIPT = "#!/bin/bash\necho $EPOCHREALTIME\nsleep {sleep_s}\necho $EPOCHREALTIME\n"


@dataclass(frozen=True)
class Work:
    """One job of the burst: what it asks for and how long it really sleeps."""

    cpus: int
    sleep_s: float
    time_limit_s: int


@dataclass(frozen=True)
class Result:
    mode: str
    makespan_s: float
    ideal_s: float
    mean_wait_s: float
    max_wait_big_s: float
    max_wait_s: float
    recorded_use: float
    idle_waiting_cpu_s: float
    idle_tail_cpu_s: float
    states: dict[str, int]
    start_lags_s: list[float]  #: the script's first line - start_time (Ray dispatch, worker, spawn)
    ray_lags_s: list[float]  #: the Ray task's start (ray.timeline) - start_time: launch and Ray's lease
    spawn_lags_s: list[float]  #: the script's first line - the Ray task's start: the executor's spawn
    end_lags_s: list[float]  #: end_time - the script's last line (process end, result, commit)
    #: CPU-seconds held beyond the sleep: before the script's first line, between its lines, after its last
    overhead_cpu_s: dict[str, float]
    first_start_s: float  #: first submit -> first start_time

    @property
    def efficiency(self) -> float:
        return self.ideal_s / self.makespan_s


def burst(count: int, seed: int, margin_s: float) -> list[Work]:
    """The same mix of jobs for a given seed: mostly small, some of 16-32 CPUs."""
    rng = random.Random(seed)
    work = []
    for _ in range(count):
        draw = rng.random()
        cpus = rng.randint(1, 4) if draw < 0.80 else rng.randint(5, 15) if draw < 0.92 else rng.randint(16, 32)
        sleep_s = round(rng.uniform(0.2, 3.0), 2)
        work.append(Work(cpus, sleep_s, math.ceil(sleep_s + margin_s)))
    return work


def ideal_s(work: list[Work]) -> float:
    return max(sum(w.cpus * w.sleep_s for w in work) / NODE_CPUS, max(w.sleep_s for w in work))


def simulate(work: list[Work], backfill: bool, kill_wait_s: float, size_weight: int, lag_s: float = 0.0) -> float:
    """The makespan conductor's policy alone would reach: plan_pass on a simulated clock.

    Passes run at the burst's arrival and at every job end, as the scheduler's do.  A job
    holds its CPUs for its sleep plus ``lag_s`` (0: no start-up or finish overhead at all);
    the expected ends are the scheduler's: start + time limit + KILL_WAIT.  Priorities are
    the job-size term only (the others are equal for jobs submitted together).
    """
    def need(w: Work) -> Resources:
        return Resources(w.cpus, w.cpus * MEMORY_PER_CPU_MB)

    node = Node("n", "n", Resources(NODE_CPUS, NODE_MEMORY_MB))
    pending = [policy.Candidate(job_id=i, partition="", per_node=need(w), priority=round(size_weight * w.cpus / NODE_CPUS),
                                submit_order=0.0, time_limit_s=w.time_limit_s) for i, w in enumerate(work)]
    pending.sort(key=policy.order_key)
    running: dict[int, tuple[float, float]] = {}  # job -> (start, end)
    now_s = makespan_s = 0.0
    while pending:
        used = sum((need(work[i]) for i in running), Resources())
        busy = [policy.Hold(Allocation(i, (node,), need(work[i])), end_s=start + work[i].time_limit_s + kill_wait_s)
                for i, (start, _) in running.items()]
        plan = policy.plan_pass(pending, [node], WORKER_CONCURRENCY - len(running), used={"n": used}, running=busy,
                                now_s=now_s, backfill=backfill)
        for allocation in plan.starts:
            running[allocation.job_id] = (now_s, now_s + work[allocation.job_id].sleep_s + lag_s)
        started = {allocation.job_id for allocation in plan.starts}
        pending = [c for c in pending if c.job_id not in started]
        now_s = min(end for _, end in running.values())
        running = {i: span for i, span in running.items() if span[1] > now_s}
        makespan_s = max(makespan_s, now_s)
    return max([makespan_s, *(end for _, end in running.values())])


def warm_workers(count: int, budget_s: float = 90.0) -> int:
    """Start ``count`` Ray worker processes, each importing the executor, before measuring.

    Ray starts only as many workers at once as the machine has cores (2 here), so rounds of
    ``count`` held tasks are sent until ``count`` distinct live workers have answered.
    """
    warm = ray.remote(executor.warm_up).options(num_cpus=0, max_retries=0, name="bench-warm-up")
    seen: set[int] = set()
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        seen |= set(ray.get([warm.remote(2.0) for _ in range(count)], timeout=300))
        seen = {pid for pid in seen if _alive(pid)}
        if len(seen) >= count:
            break
    return len(seen)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_mode(mode: str, work: list[Work], workdir: Path, kill_wait_s: float, timeout_s: float,
             size_weight: int | None) -> Result:
    home = workdir / mode
    home.mkdir()
    settings = Settings(database_url=f"sqlite:///{home / 'bench.db'}", state_dir=home / "state",
                        ray_namespace=f"bench-backfill-{mode}-{uuid.uuid4().hex[:6]}",
                        worker_concurrency=WORKER_CONCURRENCY,
                        kill_wait_s=kill_wait_s, scheduler_backfill=(mode == "on"),
                        **({} if size_weight is None else {"priority_weight_job_size": size_weight}))
    service = JobService.from_settings(settings)
    handle = scheduler.get_or_create(settings)
    try:
        scheduler.start(handle, timeout_s=120)
        specs = [jobs.JobSpec(script=SCRIPT.format(sleep_s=w.sleep_s), name=f"bf-{i}-{w.cpus}c", user="bench",
                              cpus_per_task=w.cpus, memory_per_node_mb=w.cpus * MEMORY_PER_CPU_MB,
                              time_limit_s=w.time_limit_s, working_dir=str(home))
                 for i, w in enumerate(work)]
        ids = [job.id for job in service.submit_many(specs)]
        deadline = time.monotonic() + timeout_s
        while True:
            done = service.repository.get_many(ids)
            if all(job.state.is_terminal() for job in done):
                break
            if time.monotonic() > deadline:
                unfinished = sum(not job.state.is_terminal() for job in done)
                raise TimeoutError(f"backfill {mode}: {unfinished} of {len(ids)} jobs not finished "
                                   f"after {timeout_s:.0f} s")
            time.sleep(0.25)
    finally:
        try:
            ray.get(handle.stop.remote(), timeout=60)
        finally:
            ray.kill(handle, no_restart=True)
            service.close()
    time.sleep(2.0)  # workers report task events to the GCS about once a second
    return measure(mode, work, done, dict(zip(ids, work)), _ray_task_starts(done))


def _ray_task_starts(done: list[jobs.Job]) -> dict[int, float]:
    """When each job's Ray task began on its worker (epoch seconds), from ray.timeline().

    Both modes number their jobs from 1, so only tasks that began between this run's first
    start and last end count.
    """
    first = min(job.start_time for job in done if job.start_time).timestamp() - 1.0
    last = max(job.end_time for job in done if job.end_time).timestamp() + 1.0
    names = {f"task::{job.id}:{job.spec.name}": job.id for job in done}
    starts = {}
    for event in ray.timeline():
        job_id = names.get(event.get("cat", ""))
        if job_id is not None and first <= event["ts"] / 1e6 <= last:
            starts[job_id] = event["ts"] / 1e6
    return starts


def measure(mode: str, work: list[Work], done: list[jobs.Job], work_of: dict[int, Work],
            ray_starts: dict[int, float]) -> Result:
    states: dict[str, int] = {}
    for job in done:
        states[job.state.value] = states.get(job.state.value, 0) + 1
    ran = [job for job in done if job.start_time is not None and job.end_time is not None]
    first_submit = min(job.submit_time for job in done).timestamp()
    last_end = max(job.end_time for job in ran).timestamp()
    makespan_s = last_end - first_submit
    waits = [(job.start_time - job.submit_time).total_seconds() for job in ran]
    big = [(job.start_time - job.submit_time).total_seconds() for job in ran if job.spec.total.cpus >= BIG_CPUS]
    used_cpu_s = sum(job.spec.total.cpus * (job.end_time - job.start_time).total_seconds() for job in ran)
    idle_waiting, idle_tail = _idle_cpu_s(ran, first_submit)
    start_lags, end_lags, ray_lags, spawn_lags = [], [], [], []
    overhead = {"start": 0.0, "run": 0.0, "end": 0.0}
    for job in ran:
        clock = _script_clock(job)
        if clock is not None:
            start_lags.append(clock[0] - job.start_time.timestamp())
            end_lags.append(job.end_time.timestamp() - clock[1])
            cpus = job.spec.total.cpus
            overhead["start"] += cpus * start_lags[-1]
            overhead["run"] += cpus * (clock[1] - clock[0] - work_of[job.id].sleep_s)
            overhead["end"] += cpus * end_lags[-1]
        if job.id in ray_starts:
            ray_lags.append(ray_starts[job.id] - job.start_time.timestamp())
            if clock is not None:
                spawn_lags.append(clock[0] - ray_starts[job.id])
    return Result(mode, makespan_s, ideal_s(work), statistics.fmean(waits), max(big, default=0.0), max(waits),
                  used_cpu_s / (NODE_CPUS * makespan_s), idle_waiting, idle_tail, states, start_lags,
                  ray_lags, spawn_lags, end_lags, overhead,
                  min(job.start_time for job in ran).timestamp() - first_submit)


def _script_clock(job: jobs.Job) -> tuple[float, float] | None:
    """When the script's first and last lines ran, from its output; None if it did not write both."""
    try:
        lines = Path(job.stdout_path).read_text().split()
        return float(lines[0]), float(lines[1])
    except (OSError, ValueError, IndexError):
        return None


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"mean {statistics.fmean(ordered) * 1000:5.0f} ms  p50 {statistics.median(ordered) * 1000:5.0f}  " \
           f"p95 {p95 * 1000:5.0f}  max {ordered[-1] * 1000:5.0f}"


def _idle_cpu_s(ran: list[jobs.Job], first_submit_s: float) -> tuple[float, float]:
    """Idle CPU-seconds from the first submit to the last start (some job waiting), and after it."""
    events: list[tuple[float, int]] = []
    for job in ran:
        events.append((job.start_time.timestamp(), job.spec.total.cpus))
        events.append((job.end_time.timestamp(), -job.spec.total.cpus))
    events.sort()
    last_start = max(job.start_time.timestamp() for job in ran)
    used, at, waiting, tail = 0, first_submit_s, 0.0, 0.0
    for when, delta in events:
        if when > at:
            idle = (NODE_CPUS - used) * (when - at)
            if when <= last_start:
                waiting += idle
            else:
                split = max(at, last_start)
                waiting += (NODE_CPUS - used) * (split - at)
                tail += (NODE_CPUS - used) * (when - split)
            at = when
        used += delta
    return waiting, tail


def report(work: list[Work], results: list[Result], kill_wait_s: float, size_weight: int) -> None:
    total_cpu_s = sum(w.cpus * w.sleep_s for w in work)
    big = sum(w.cpus >= BIG_CPUS for w in work)
    slack = statistics.fmean(w.time_limit_s - w.sleep_s for w in work)
    print(f"burst: {len(work)} jobs, {big} of >= {BIG_CPUS} CPUs, sum {total_cpu_s:.0f} CPU-s "
          f"(/ {NODE_CPUS} = {total_cpu_s / NODE_CPUS:.1f} s), longest {max(w.sleep_s for w in work):.2f} s, "
          f"time limit - sleep: mean {slack:.2f} s")
    print(f"ideal (lower bound of the makespan) = max(sum CPU-s / {NODE_CPUS}, longest) = {ideal_s(work):.2f} s")
    header = (f"{'backfill':8s} {'makespan':>9s} {'efficiency':>10s} {'mean wait':>9s} {'max wait >=16c':>14s} "
              f"{'max wait':>8s} {'recorded use':>12s} {'idle CPU-s waiting':>18s} {'idle CPU-s tail':>15s}  states")
    print(header)
    for r in results:
        print(f"{r.mode:8s} {r.makespan_s:8.2f}s {r.efficiency:10.3f} {r.mean_wait_s:8.2f}s {r.max_wait_big_s:13.2f}s "
              f"{r.max_wait_s:7.2f}s {r.recorded_use:12.3f} {r.idle_waiting_cpu_s:18.0f} {r.idle_tail_cpu_s:15.0f}  "
              + ", ".join(f"{k} {v}" for k, v in sorted(r.states.items())))
    for r in results:
        print(f"{r.mode:8s} start_time -> script's first line: {_spread(r.start_lags_s)}")
        print(f"{r.mode:8s}   start_time -> Ray task began:    {_spread(r.ray_lags_s)}  ({len(r.ray_lags_s)} tasks)")
        print(f"{r.mode:8s}   Ray task began -> first line:    {_spread(r.spawn_lags_s)}")
        print(f"{r.mode:8s} script's last line -> end_time:    {_spread(r.end_lags_s)}")
    for r in results:
        capacity = NODE_CPUS * r.makespan_s
        parts = [("sleeping", total_cpu_s), ("held before the script ran", r.overhead_cpu_s["start"]),
                 ("script beyond its sleep", r.overhead_cpu_s["run"]),
                 ("held after the script ended", r.overhead_cpu_s["end"]),
                 ("idle while jobs waited", r.idle_waiting_cpu_s), ("idle after the last start", r.idle_tail_cpu_s)]
        print(f"{r.mode:8s} node time {capacity:.0f} CPU-s (first submit {r.first_start_s * 1000:.0f} ms before "
              f"the first start): " + ", ".join(f"{name} {value:.0f} ({value / capacity:.1%})" for name, value in parts))
    for r in results:
        lag_s = statistics.fmean(r.start_lags_s) + statistics.fmean(r.end_lags_s) if r.start_lags_s else 0.0
        alone = ideal_s(work) / simulate(work, r.mode == "on", kill_wait_s, size_weight)
        lagged = ideal_s(work) / simulate(work, r.mode == "on", kill_wait_s, size_weight, lag_s)
        print(f"{r.mode:8s} the policy alone on a simulated clock: efficiency {alone:.3f} with no overhead, "
              f"{lagged:.3f} with each job holding its CPUs {lag_s * 1000:.0f} ms longer (this run's mean lags); "
              f"measured {r.efficiency:.3f}")
    by_mode = {r.mode: r for r in results}
    if "on" in by_mode and "off" in by_mode:
        on, off = by_mode["on"], by_mode["off"]
        print(f"on/off   makespan x{on.makespan_s / off.makespan_s:.3f}   efficiency x{on.efficiency / off.efficiency:.3f}"
              f"   mean wait x{on.mean_wait_s / off.mean_wait_s:.3f}"
              f"   max wait >=16c x{on.max_wait_big_s / max(off.max_wait_big_s, 1e-9):.3f}")
        verdict = "meets" if on.efficiency >= 0.85 else "misses"
        print(f"aim: efficiency >= 0.85 with backfill: {on.efficiency:.3f} ({verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--margin-s", type=float, default=0.25,
                        help="time limit = ceil(sleep + margin) whole seconds (default 0.25)")
    parser.add_argument("--kill-wait-s", type=float, default=1.0)
    parser.add_argument("--size-weight", type=int, default=None,
                        help="PRIORITY_WEIGHT_JOB_SIZE (default: the project's; 0: submit order, FIFO)")
    parser.add_argument("--order", default="off,on", help="modes in the order they run (default off,on)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.order.split(",") if m.strip()]
    if not modes or any(m not in ("on", "off") for m in modes):
        parser.error("--order: a comma-separated list of 'on' and 'off'")
    work = burst(args.jobs, args.seed, args.margin_s)
    size_weight = Settings.model_fields["priority_weight_job_size"].default if args.size_weight is None \
        else args.size_weight
    started = time.monotonic()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} ({os.cpu_count()} cores); "
          f"node declared {NODE_CPUS} CPUs; seed {args.seed}; KILL_WAIT {args.kill_wait_s:g} s; "
          f"margin {args.margin_s:g} s; PRIORITY_WEIGHT_JOB_SIZE {size_weight}")
    ray.init(address="local", num_cpus=NODE_CPUS, _memory=NODE_MEMORY_MB * 1024**2, object_store_memory=256 * 1024**2,
             include_dashboard=False, log_to_driver=False)
    results = []
    failed = False
    try:
        print(f"warm Ray worker processes: {warm_workers(NODE_CPUS)} ({time.monotonic() - started:.0f} s so far)")
        with tempfile.TemporaryDirectory() as tmp:
            for mode in modes:
                result = run_mode(mode, work, Path(tmp), args.kill_wait_s, timeout_s=10 * ideal_s(work) + 120,
                                  size_weight=args.size_weight)
                results.append(result)
                print(f"backfill {mode}: makespan {result.makespan_s:.2f} s, efficiency {result.efficiency:.3f} "
                      f"(load average now {os.getloadavg()[0]:.1f})", flush=True)
                failed |= set(result.states) != {jobs.JobState.COMPLETED.value}
    finally:
        ray.shutdown()
    report(work, results, args.kill_wait_s, size_weight)
    print(f"bench took {time.monotonic() - started:.0f} s")
    if failed:
        print("error: some jobs did not complete (see states)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
