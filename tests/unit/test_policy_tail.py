"""A full pass that stops where every partition is blocked, then decides the rest with
tail_reasons, gives every job the reason a pass over every job gives it; the ledger hands it
only the jobs whose recorded reason could differ."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from conductor import jobs
from conductor.jobs import Reason
from conductor.policy import Candidate, Hold, order_key, plan_pass, tail_reasons
from conductor.resources import Allocation, Node, Resources
from conductor.scheduler.ledger import Ledger
from tests.helpers import spec

NODES = [Node("ray-a", "a", Resources(16, 32768), partitions=frozenset({"batch", "debug"})),
         Node("ray-b", "b", Resources(8, 8192, 2), partitions=frozenset({"batch", "gpu"})),
         Node("ray-c", "c", Resources(4, 4096), partitions=frozenset({"debug"}))]


def _random_jobs(rng: random.Random, count: int) -> list[Candidate]:
    found = []
    for job_id in range(1, count + 1):
        array = rng.choice([None, None, None, 900, 901])
        found.append(Candidate(
            job_id=job_id, partition=rng.choice(["batch", "debug", "gpu"]),
            per_node=Resources(rng.choice([1, 2, 4, 8, 32]), rng.choice([0, 512, 4096, 65536]), rng.choice([0, 0, 1])),
            priority=rng.choice([0, 10, 20]), submit_order=float(job_id), array_job_id=array,
            array_max_running=2 if array == 900 else None, nodes=rng.choice([1, 1, 1, 2]),
            time_limit_s=rng.choice([None, 60.0, 3600.0]), exclusive=rng.random() < 0.05))
    return sorted(found, key=order_key)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("backfill", [False, True])
def test_a_pass_stopped_at_the_tail_plus_tail_reasons_equals_a_pass_over_every_job(seed: int, backfill: bool) -> None:
    rng = random.Random(seed)
    pending = _random_jobs(rng, rng.randint(1, 300))
    used = {"ray-a": Resources(rng.randint(0, 16), 1024), "ray-b": Resources(rng.randint(0, 8), 0)}
    running = [Hold(Allocation(0, (NODES[0],), Resources(4)), 500.0)]
    options = dict(used=used, array_running={900: rng.randint(0, 2)}, running=running, now_s=100.0,
                   backfill=backfill, reserve_depth=rng.choice([1, 5, 200]))
    free_slots = rng.choice([0, 3, 50])
    every = plan_pass(pending, NODES, free_slots, **options)
    stopped = plan_pass(pending, NODES, free_slots, partitions={job.partition for job in pending}, **options)
    reached = {*stopped.reasons, *(start.job_id for start in stopped.starts)}
    rest = [job for job in pending if job.job_id not in reached]
    assert stopped.complete == (not rest)
    decided = {**stopped.reasons, **tail_reasons(rest, NODES, stopped.array_running)}
    assert stopped.starts == every.starts
    assert decided == every.reasons
    assert stopped.expected_start_s == every.expected_start_s


def _job(job_id: int, reason: Reason = Reason.NONE, **fields: object) -> jobs.Job:
    return jobs.Job(id=job_id, spec=spec("true", **fields), state=jobs.JobState.PENDING, reason=reason,
                    submit_time=datetime(2026, 12, 1, tzinfo=timezone.utc))


def test_the_ledger_hands_a_full_pass_only_jobs_whose_reason_may_differ() -> None:
    ledger = Ledger()
    ledger.add_pending(_job(1), set(), 0)  # new: no reason yet
    ledger.add_pending(_job(2, Reason.PRIORITY), set(), 0)  # adopted with its reason: settled
    ledger.add_pending(_job(3, Reason.RESOURCES), set(), 0)  # was first in line: may be Priority now
    ledger.add_pending(_job(4, Reason.PRIORITY, array_job_id=4, array_task_id=0, array_max_running=1), set(), 0)
    ledger.add_pending(_job(5), set(), 0)
    found, more = ledger.unsettled_jobs(reached={5}, limit=10)
    assert sorted(c.job_id for c in found) == [1, 3, 4] and not more  # 4: its array's throttle may bind

    ledger.set_reason(1, Reason.PRIORITY)
    ledger.set_reason(3, Reason.PRIORITY)
    ledger.set_reason(5, Reason.RESOURCES)
    del ledger.pending[5]  # started, say: a lingering id is dropped when read
    found, more = ledger.unsettled_jobs(reached=set(), limit=10)
    assert [c.job_id for c in found] == [4] and not more

    for job_id in range(10, 30):
        ledger.add_pending(_job(job_id), set(), 0)
    found, more = ledger.unsettled_jobs(reached=set(), limit=5)
    assert len(found) == 5 and more
