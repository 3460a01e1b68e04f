"""Priority bookkeeping: each pending job's priority, kept up to date as Slurm's PriorityCalcPeriod.

New jobs get theirs when they arrive; every pending job's is recomputed at most once per
PRIORITY_CALC_PERIOD_S (age and fair share move slowly), and no more often than keeps the
recomputation under 1/PRIORITY_COST_RATIO of the scheduler's time (about 0.4 s at 100,000
pending jobs here: every 8 s then).  Fair share starts from the usage
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


class Priorities:
    """The scheduler's PriorityModel and when it last recomputed the pending set."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self._model = priority.PriorityModel(settings)
        self._ledger = ledger
        self._next_at_s = 0.0  # monotonic time from which the next full recomputation is due

    def load_usage(self, repo: JobRepository) -> None:
        """Fair share from the database: CPU-seconds of jobs that ran in the last few half-lives."""
        now_s = time.time()
        self._model.load_usage(repo.usage_records(self._model.usage_window_start(now_s)), now_s)
        self._next_at_s = 0.0

    def of(self, job: jobs.Job, *, cluster_cpus: int | None = None, now_s: float | None = None) -> int:
        cluster_cpus = self._ledger.cluster_cpus() if cluster_cpus is None else cluster_cpus
        return self._model.factors(job, cluster_cpus=cluster_cpus, now_s=time.time() if now_s is None else now_s).priority

    def charge(self, account: str, cpu_s: float) -> None:
        self._model.charge(account, cpu_s, time.time())

    def refresh(self) -> None:
        """Recompute every pending job's priority, when due (see the module's docstring)."""
        began_s = time.monotonic()
        if began_s < self._next_at_s:
            return
        cluster_cpus, now_s = self._ledger.cluster_cpus(), time.time()
        changed = [(job_id, value) for job_id, pending in self._ledger.pending.items()
                   if (value := self.of(pending.job, cluster_cpus=cluster_cpus, now_s=now_s))
                   != pending.candidate.priority]
        for job_id, value in changed:
            self._ledger.reprioritise(job_id, value)
        cost_s = time.monotonic() - began_s
        self._next_at_s = time.monotonic() + max(PRIORITY_CALC_PERIOD_S, PRIORITY_COST_RATIO * cost_s)
