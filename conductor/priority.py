"""Job priority: Slurm's multifactor model, as pure functions.

    priority = W_age * age + W_fairshare * fairshare + W_size * job_size + W_partition * partition
               + admin - nice

``admin`` is the priority an admin set on the job (--priority; Slurm's site factor), added as is.

Every factor is in [0, 1]:

- age: time pending over PRIORITY_MAX_AGE, capped at 1;
- fair share: ``2 ** -(U / S)``, U the account's share of all decayed usage, S its share of
  the cluster (equal shares between the accounts that have usage, plus this one); usage is
  CPU-seconds, halved every PRIORITY_DECAY_HALF_LIFE; an account with no usage gets 1;
- job size: the job's CPUs over the cluster's;
- partition: the partition's PriorityJobFactor over the largest one's.

The scheduler and the service (``conductor show``) compute it with the same ``PriorityModel``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable

from conductor.config import Settings
from conductor.partitions import Partition

if TYPE_CHECKING:
    from conductor.jobs import Job


@dataclass(frozen=True)
class Weights:
    age: int
    fairshare: int
    job_size: int
    partition: int
    max_age_s: float
    half_life_s: float

    @classmethod
    def of(cls, settings: Settings) -> Weights:
        return cls(settings.priority_weight_age, settings.priority_weight_fairshare,
                   settings.priority_weight_job_size, settings.priority_weight_partition,
                   float(settings.priority_max_age_s), float(settings.priority_decay_half_life_s))


@dataclass(frozen=True)
class Factors:
    """A pending job's priority and what it is made of (``sprio``)."""

    priority: int
    age: float
    fairshare: float
    job_size: float
    partition: float
    nice: int
    admin: int  #: the admin-set priority, added to the sum

    def as_dict(self) -> dict:
        return {"priority": self.priority, "age": round(self.age, 4), "fairshare": round(self.fairshare, 4),
                "job_size": round(self.job_size, 4), "partition": round(self.partition, 4), "nice": self.nice,
                "admin": self.admin}


#: How far back finished jobs count for fair share, in half-lives (older ones weigh < 1/32).
USAGE_HALF_LIVES = 5


@dataclass(frozen=True)
class UsageRecord:
    """CPU-seconds an account used, as of when (a finished job, or a running one so far)."""

    account: str
    cpu_s: float
    at_s: float


class FairShare:
    """Decayed CPU-seconds per account, and the fair-share factor they give."""

    def __init__(self, half_life_s: float) -> None:
        self._half_life_s = half_life_s
        self._usage: dict[str, tuple[float, float]] = {}  # account -> (usage, as of)

    @classmethod
    def of(cls, records: Iterable[UsageRecord], half_life_s: float) -> FairShare:
        share = cls(half_life_s)
        for record in records:
            share.add(record.account, record.cpu_s, record.at_s)
        return share

    def add(self, account: str, cpu_s: float, at_s: float) -> None:
        if cpu_s <= 0:
            return
        usage, as_of = self._usage.get(account, (0.0, at_s))
        if at_s >= as_of:
            self._usage[account] = (self._decay(usage, at_s - as_of) + cpu_s, at_s)
        else:  # an older record: decay it to the account's time instead
            self._usage[account] = (usage + self._decay(cpu_s, as_of - at_s), as_of)

    def usage(self, account: str, now_s: float) -> float:
        usage, as_of = self._usage.get(account, (0.0, now_s))
        return self._decay(usage, max(0.0, now_s - as_of))

    def factor(self, account: str, now_s: float) -> float:
        total = sum(self.usage(name, now_s) for name in self._usage)
        mine = self.usage(account, now_s)
        if total <= 0 or mine <= 0:
            return 1.0
        accounts = len(self._usage) + (account not in self._usage)
        return 2.0 ** -((mine / total) * accounts)

    def _decay(self, value: float, elapsed_s: float) -> float:
        return value * math.pow(0.5, elapsed_s / self._half_life_s)


def usage_of(rows: Iterable[tuple[str, int, datetime, datetime | None]], now_s: float) -> list[UsageRecord]:
    """Usage records (CPUs x run time) from (account, CPUs, start, end) rows of jobs that ended.

    A running job (end None) counts once it ends, as the scheduler adds it then.
    """
    return [UsageRecord(account, cpus * max(0.0, end.timestamp() - start.timestamp()), end.timestamp())
            for account, cpus, start, end in rows if end is not None and end.timestamp() <= now_s + 60]


def partition_factors(partitions: Iterable[Partition]) -> dict[str, float]:
    """Each partition's PriorityJobFactor over the largest one's (all 0 -> all 0)."""
    found = list(partitions)
    top = max((p.priority_job_factor for p in found), default=0)
    return {p.name: (p.priority_job_factor / top if top else 0.0) for p in found}


def compute(*, weights: Weights, waited_s: float, fairshare: float, job_cpus: int, cluster_cpus: int,
            partition: float, nice: int, admin: int) -> Factors:
    """The priority of one pending job from its factors."""
    age = min(1.0, max(0.0, waited_s) / weights.max_age_s)
    size = min(1.0, job_cpus / cluster_cpus) if cluster_cpus > 0 else 0.0
    total = round(weights.age * age + weights.fairshare * fairshare + weights.job_size * size
                  + weights.partition * partition)
    return Factors(priority=total + admin - nice, age=age, fairshare=fairshare, job_size=size, partition=partition,
                   nice=nice, admin=admin)


class PriorityModel:
    """The site's weights, partition factors and fair share: a pending job's priority from them.

    The scheduler keeps one for its whole life (usage loaded at start, each ended job charged);
    the service loads usage afresh for ``conductor show`` (sprio).
    """

    def __init__(self, settings: Settings) -> None:
        self.weights = Weights.of(settings)
        self._partitions = partition_factors(settings.partitions)
        self._fairshare = FairShare(self.weights.half_life_s)

    def usage_window_start(self, now_s: float) -> datetime:
        """Jobs that ended before this no longer count for fair share."""
        return datetime.fromtimestamp(now_s - USAGE_HALF_LIVES * self.weights.half_life_s, timezone.utc)

    def load_usage(self, rows: Iterable[tuple[str, int, datetime, datetime | None]], now_s: float) -> None:
        """Fair share from (account, CPUs, start, end) rows of jobs that ran (the repository's usage_records)."""
        self._fairshare = FairShare.of(usage_of(rows, now_s), self.weights.half_life_s)

    def charge(self, account: str, cpu_s: float, at_s: float) -> None:
        """An ended job's CPU-seconds count against its account from now on."""
        self._fairshare.add(account, cpu_s, at_s)

    def factors(self, job: Job, *, cluster_cpus: int, now_s: float) -> Factors:
        spec = job.spec
        return compute(weights=self.weights, waited_s=now_s - job.submit_time.timestamp(),
                       fairshare=self._fairshare.factor(spec.account, now_s), job_cpus=spec.total.cpus,
                       cluster_cpus=cluster_cpus, partition=self._partitions.get(spec.partition, 0.0),
                       nice=spec.nice, admin=spec.priority)
