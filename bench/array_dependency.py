"""The per-pass cost of a dependency on a large job array, PostgreSQL and SQLite, side by side.

Each pass the scheduler hands its whole pending set to ``eligibility`` (conductor/scheduler/
actor.py ``_blocked_reasons``).  This calls exactly that, against a real database that
holds a 5,000-task array (2,000 COMPLETED, 100 RUNNING, the rest PENDING and in the pending
set) next to a backlog of plain pending jobs, and prints the median and p95 time of one call:

  no dependent       the pending set alone (the baseline: what every pass pays anyway)
  afterok:BIG        plus one job that depends on the 5,000-task array
  afterok:SMALL      plus one job that depends on a 50-task array instead (must cost the same)
  aftercorr:SMALL    plus a 50-task array whose task N waits for task N of the small array
  read every task    what reading the 5,000 tasks' states (the naive way) costs per pass

Run:  .venv/bin/python bench/array_dependency.py [--tasks 5000] [--backlog 1000] [--passes 200]
Needs PostgreSQL on 127.0.0.1 for its column (skipped when absent).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import create_engine, text, update

from conductor import dependencies, eligibility, jobs
from conductor.db.models import JobRow
from conductor.db.repository import JobRepository
from conductor.db.session import make_engine, migrate

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
SMALL_TASKS = 50
COMPLETED_TASKS, RUNNING_TASKS = 2000, 100


@contextlib.contextmanager
def databases(workdir: Path) -> Iterator[dict[str, str]]:
    """SQLite always; PostgreSQL when reachable (a scratch database, dropped afterwards)."""
    found = {"sqlite": f"sqlite:///{workdir / 'bench.db'}"}
    name = f"conductor_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        found["postgresql"] = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL here
        print(f"(PostgreSQL unavailable, skipped: {exc})")
    try:
        yield found
    finally:
        with contextlib.suppress(Exception), admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _spec(**fields: object) -> jobs.JobSpec:
    return jobs.JobSpec(script="#!/bin/bash\ntrue\n", name="bench", user="bench", working_dir="/tmp", **fields)


def _array(repo: JobRepository, size: int, **fields: object) -> list[jobs.Job]:
    """An array of ``size`` tasks: the first COMPLETED_TASKS completed, RUNNING_TASKS running (scaled)."""
    tasks = repo.add_array(_spec(**fields), range(1, size + 1))
    done, running = size * COMPLETED_TASKS // 5000, size * RUNNING_TASKS // 5000
    with repo.engine.begin() as connection:
        for state, chosen in ((jobs.JobState.COMPLETED, tasks[:done]),
                              (jobs.JobState.RUNNING, tasks[done:done + running])):
            connection.execute(update(JobRow).where(JobRow.id.in_([t.id for t in chosen])).values(state=state.value))
    return repo.get_many(t.id for t in tasks)


def _pending_set(found: list[jobs.Job]) -> list[tuple[jobs.Job, dependencies.Dependency | None]]:
    """The scheduler's view: each PENDING job with its parsed dependency (scheduler._add_pending)."""
    return [(job, dependencies.parse(job.spec.dependency) if job.spec.dependency else None)
            for job in found if job.state is jobs.JobState.PENDING]


def _time_ms(call: Callable[[], object], passes: int) -> tuple[float, float]:
    for _ in range(5):  # warm the connection pool and the statement caches
        call()
    times = []
    for _ in range(passes):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def measure(url: str, tasks: int, backlog: int, passes: int) -> dict[str, tuple[float, float]]:
    engine = make_engine(url)
    migrate(engine)
    repo = JobRepository(engine)
    big, small = _array(repo, tasks), _array(repo, SMALL_TASKS)
    corr = _array(repo, SMALL_TASKS, dependency=f"aftercorr:{small[0].id}")
    plain = repo.add_jobs([_spec() for _ in range(backlog)])
    base = _pending_set(big + small + plain)
    on_big = repo.add_job(_spec(dependency=f"afterok:{big[0].id}"))
    on_small = repo.add_job(_spec(dependency=f"afterok:{small[0].id}"))
    if repo.engine.dialect.name == "postgresql":
        with repo.engine.begin() as connection:
            connection.execute(text("ANALYZE jobs"))
    now = datetime.now(timezone.utc)

    def with_job(job: jobs.Job) -> Callable[[], object]:
        pending = [*base, *_pending_set([job])]
        return lambda: eligibility.blocked(pending, repo, now)

    corr_pending = [*base, *_pending_set([replace(t, state=jobs.JobState.PENDING) for t in corr])]
    every_task = [t.id for t in big]
    results = {
        "no dependent": _time_ms(lambda: eligibility.blocked(base, repo, now), passes),
        f"afterok:BIG ({tasks})": _time_ms(with_job(on_big), passes),
        f"afterok:SMALL ({SMALL_TASKS})": _time_ms(with_job(on_small), passes),
        f"aftercorr:SMALL ({SMALL_TASKS} dep.)": _time_ms(lambda: eligibility.blocked(corr_pending, repo, now), passes),
        f"read every task ({tasks})": _time_ms(lambda: repo.states_of(every_task), passes),
    }
    verdict = eligibility.blocked([*base, *_pending_set([on_big])], repo, now)[0].get(on_big.id)
    assert verdict == jobs.Reason.DEPENDENCY, f"the dependent job should wait for the array, got {verdict}"
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000, help="tasks of the big array (default 5000)")
    parser.add_argument("--backlog", type=int, default=1000, help="plain pending jobs beside it (default 1000)")
    parser.add_argument("--passes", type=int, default=200, help="calls timed per figure (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, databases(Path(workdir)) as urls:
        results = {name: measure(url, args.tasks, args.backlog, args.passes) for name, url in urls.items()}
    print(f"eligibility.blocked per pass over the pending set ({args.backlog} plain jobs beside the arrays' pending "
          f"tasks): median / p95 ms of {args.passes} calls")
    names = list(results)
    print(f"{'':30}" + "".join(f"{name:>22}" for name in names))
    for row in next(iter(results.values())):
        print(f"{row:30}" + "".join(f"{results[n][row][0]:>10.2f} / {results[n][row][1]:>7.2f}" for n in names))


if __name__ == "__main__":
    main()
