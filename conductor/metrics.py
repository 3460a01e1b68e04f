"""conductor's metrics: the catalogue of names, and the scheduler's figures as plain values.

Pure (standard library only).  The API turns the catalogue into prometheus-client families at
``/metrics`` (``api/metrics.py``); the scheduler actor exports the same names through Ray's
metrics (``conductor/scheduler/telemetry.py``), where Ray prefixes them with ``ray_``.  Names
follow Prometheus' conventions: base units (``_seconds``, ``_bytes``), counters end in ``_total``,
and no gauge does (so a node's capacity is ``conductor_node_cpus``, not ``..._cpus_total``).

Where each number comes from (``source``): ``database`` figures are computed when scraped, from
aggregate queries, so they are true whichever process restarted; ``scheduler`` figures live in the
scheduler actor and restart from zero with it (Prometheus reads that as a counter reset);
``api`` figures are counted by the API process that serves the scrape.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

GAUGE, COUNTER, HISTOGRAM = "gauge", "counter", "histogram"
#: Upper bounds of the scheduling pass histogram (seconds).
PASS_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Upper bounds of the submit -> start histogram (seconds): milliseconds on an idle queue, hours in a busy one.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                     3600.0, 14400.0, 86400.0)


@dataclass(frozen=True)
class Metric:
    """One metric family as /metrics exposes it."""

    name: str
    kind: str
    help: str
    source: str  #: database, scheduler or api (see the module's docstring)
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    def sample_names(self) -> frozenset[str]:
        """The series names a query may use: ``_bucket``/``_sum``/``_count`` of a histogram, the name itself otherwise."""
        if self.kind == HISTOGRAM:
            return frozenset(f"{self.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        return frozenset({self.name})


def _m(name: str, kind: str, source: str, help_: str, *labels: str, buckets: tuple[float, ...] = ()) -> Metric:
    return Metric(name, kind, help_, source, labels, buckets)


CATALOGUE: tuple[Metric, ...] = (
    _m("conductor_jobs_pending", GAUGE, "database", "Jobs waiting, by partition and reason.", "partition", "reason"),
    _m("conductor_jobs_running", GAUGE, "database", "Jobs running, by partition.", "partition"),
    _m("conductor_jobs_ended_total", COUNTER, "database",
       "Jobs in a terminal state, by state (a job requeued after it ended leaves the count).", "state"),
    _m("conductor_submissions_total", COUNTER, "database", "Jobs submitted (one per array task)."),
    _m("conductor_oldest_pending_job_age_seconds", GAUGE, "database", "Age of the oldest pending job (0: none)."),
    _m("conductor_account_cpu_seconds_total", COUNTER, "database",
       "CPU-seconds allocated to jobs that ran and ended (CPUs x elapsed), by account.", "account"),
    _m("conductor_node_up", GAUGE, "database", "1 when the node is alive, 0 when it left.", "node"),
    _m("conductor_node_cpus", GAUGE, "database", "CPUs of the node.", "node"),
    _m("conductor_node_cpus_allocated", GAUGE, "database", "CPUs that jobs hold on the node.", "node"),
    _m("conductor_node_memory_bytes", GAUGE, "database", "Memory of the node (Ray's memory resource).", "node"),
    _m("conductor_node_memory_allocated_bytes", GAUGE, "database", "Memory that jobs hold on the node.", "node"),
    _m("conductor_node_gpus", GAUGE, "database", "GPUs of the node.", "node"),
    _m("conductor_node_gpus_allocated", GAUGE, "database", "GPUs that jobs hold on the node.", "node"),
    _m("conductor_scheduler_up", GAUGE, "api", "1 when the scheduler actor answered this scrape, else 0."),
    _m("conductor_scheduler_start_time_seconds", GAUGE, "scheduler", "When the scheduler started (Unix time)."),
    _m("conductor_scheduler_passes_total", COUNTER, "scheduler", "Scheduling passes run."),
    _m("conductor_scheduler_pass_duration_seconds", HISTOGRAM, "scheduler", "Duration of one scheduling pass.",
       buckets=PASS_BUCKETS_S),
    _m("conductor_submit_to_start_seconds", HISTOGRAM, "scheduler",
       "From submit to dispatch (RUNNING) of a job's first start.", buckets=LATENCY_BUCKETS_S),
    _m("conductor_scheduler_loop_lag_seconds", GAUGE, "scheduler",
       "How late the scheduler's event loop ran a 1 s timer, last measured."),
    _m("conductor_database_errors_total", COUNTER, "scheduler",
       "Database failures met, by component (scheduler, api).", "component"),
    _m("conductor_queue_errors_total", COUNTER, "scheduler", "Queue (Redis) failures met, by component.", "component"),
)
BY_NAME = {metric.name: metric for metric in CATALOGUE}


def exported_series_names() -> frozenset[str]:
    """Every series name /metrics can show (histograms' _bucket/_sum/_count included)."""
    return frozenset().union(*(metric.sample_names() for metric in CATALOGUE))


@dataclass(frozen=True)
class HistogramSnapshot:
    """Cumulative counts at each upper bound (the last one is +Inf), their sum and count."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    sum: float
    count: int

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-quantile (None: nothing observed or past the last bound)."""
        if not self.count:
            return None
        rank = q * self.count
        for bound, seen in zip(self.bounds, self.cumulative):
            if seen >= rank:
                return bound
        return None


class Histogram:
    """Counts of observations under each bound (Prometheus' ``le``: a value equal to a bound is under it)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        cumulative, seen = [], 0
        for count in self._counts:
            seen += count
            cumulative.append(seen)
        return HistogramSnapshot(self._bounds, tuple(cumulative), self._sum, seen)


@dataclass(frozen=True)
class SchedulerFigures:
    """What the scheduler actor measured since it started (its part of /metrics and of ``conductor status``)."""

    started_at_s: float
    passes_total: int = 0
    passes_last_minute: int = 0
    last_pass_duration_s: float | None = None
    last_pass_at_s: float | None = None
    #: The last full pass (every pending job's reason; a quick pass stops once nothing more can start).
    last_full_pass_duration_s: float | None = None
    loop_lag_s: float = 0.0
    pass_duration: HistogramSnapshot = field(default_factory=lambda: Histogram(PASS_BUCKETS_S).snapshot())
    submit_to_start: HistogramSnapshot = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S).snapshot())
    database_errors: int = 0
    queue_errors: int = 0
