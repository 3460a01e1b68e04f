"""Priority bookkeeping: each pending job's priority, kept up to date as Slurm's PriorityCalcPeriod.

New jobs get theirs when they arrive; every pending job's is recomputed at most once per
PRIORITY_CALC_PERIOD_S (age and fair share move slowly).  Fair share starts from the usage
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


class Priorities:
    """The scheduler's PriorityModel and when it last recomputed the pending set."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self._model = priority.PriorityModel(settings)
        self._ledger = ledger
        self._computed_at = 0.0  # monotonic time of the last full recomputation

    def load_usage(self, repo: JobRepository) -> None:
        """Fair share from the database: CPU-seconds of jobs that ran in the last few half-lives."""
        now_s = time.time()
        self._model.load_usage(repo.usage_records(self._model.usage_window_start(now_s)), now_s)
        self._computed_at = 0.0

    def of(self, job: jobs.Job) -> int:
        return self._model.factors(job, cluster_cpus=self._ledger.cluster_cpus(), now_s=time.time()).priority

    def charge(self, account: str, cpu_s: float) -> None:
        self._model.charge(account, cpu_s, time.time())

    def refresh(self) -> None:
        """Recompute every pending job's priority, at most once per PRIORITY_CALC_PERIOD_S."""
        now = time.monotonic()
        if now - self._computed_at < PRIORITY_CALC_PERIOD_S:
            return
        self._computed_at = now
        changed = [(job_id, value) for job_id, pending in self._ledger.pending.items()
                   if (value := self.of(pending.job)) != pending.candidate.priority]
        for job_id, value in changed:
            self._ledger.reprioritise(job_id, value)
