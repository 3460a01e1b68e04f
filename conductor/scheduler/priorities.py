"""Priority bookkeeping: each pending job's priority, kept up to date as Slurm's PriorityCalcPeriod.

New jobs get theirs when they arrive; every pending job's is recomputed at most once per
PRIORITY_CALC_PERIOD_S (age and fair share move slowly), and no more often than keeps the
recomputation under 1/PRIORITY_COST_RATIO of the scheduler's time (about 0.4 s at 100,000
pending jobs here: every 8 s then).  A recomputation is done PRIORITY_CHUNK jobs at a time, one
chunk per pass, so that no pass holds the scheduler for all of it.  Fair share starts from the usage
in the database and is charged as jobs end.
"""

from __future__ import annotations

import time

from conductor import jobs, priority
from conductor.config import Settings
from conductor.db.repository import JobRepository
from conductor.scheduler.ledger import Ledger

#: How often pending jobs' priorities are recomputed (Slurm's PriorityCalcPeriod).
PRIORITY_CALC_PERIOD_S = 5.0
PRIORITY_COST_RATIO = 20
#: Pending jobs recomputed per pass at most: 100,000 of them are spread over 20 passes of ~20 ms.
PRIORITY_CHUNK = 5000


class Priorities:
    """The scheduler's PriorityModel and when it last recomputed the pending set."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self._model = priority.PriorityModel(settings)
        self._ledger = ledger
        self._next_at_s = 0.0  # monotonic time from which the next full recomputation is due
        self._left: list[int] | None = None  # jobs the recomputation under way has still to do
        self._cost_s = 0.0  # what the recomputation under way has cost so far
        self._inputs = (0, 0.0)  # its cluster CPUs and clock, the same for every chunk

    def load_usage(self, repo: JobRepository) -> None:
        """Fair share from the database: CPU-seconds of jobs that ran in the last few half-lives."""
        now_s = time.time()
        self._model.load_usage(repo.usage_records(self._model.usage_window_start(now_s)), now_s)
        self._next_at_s, self._left = 0.0, None

    def of(self, job: jobs.Job, *, cluster_cpus: int | None = None, now_s: float | None = None) -> int:
        cluster_cpus = self._ledger.cluster_cpus() if cluster_cpus is None else cluster_cpus
        return self._model.factors(job, cluster_cpus=cluster_cpus, now_s=time.time() if now_s is None else now_s).priority

    def charge(self, account: str, cpu_s: float) -> None:
        self._model.charge(account, cpu_s, time.time())

    def refresh(self) -> bool:
        """Recompute pending jobs' priorities when due (see the module's docstring), at most
        PRIORITY_CHUNK of them per call; True while a recomputation is under way (call again soon)."""
        began_s = time.monotonic()
        if self._left is None:
            if began_s < self._next_at_s:
                return False
            self._left = list(self._ledger.pending)
            self._cost_s, self._inputs = 0.0, (self._ledger.cluster_cpus(), time.time())
        cluster_cpus, now_s = self._inputs
        chunk = self._left[-PRIORITY_CHUNK:]
        del self._left[-PRIORITY_CHUNK:]
        pending = self._ledger.pending
        for job_id in chunk:
            held = pending.get(job_id)  # None: it left since the recomputation began
            if held is not None and (value := self.of(held.job, cluster_cpus=cluster_cpus, now_s=now_s)) \
                    != held.candidate.priority:
                self._ledger.reprioritise(job_id, value)
        self._cost_s += time.monotonic() - began_s
        if self._left:
            return True
        self._left = None
        self._next_at_s = time.monotonic() + max(PRIORITY_CALC_PERIOD_S, PRIORITY_COST_RATIO * self._cost_s)
        return False
