"""The scheduler's own figures: pass durations, submit -> start, loop lag, errors; exported to Ray.

Kept as plain counts (``conductor.metrics.Histogram``) so ``describe()`` can hand them to the
API's ``/metrics`` and ``conductor status``, and mirrored into ``ray.util.metrics`` so they sit
beside Ray's own metrics (Ray's exporter prefixes them ``ray_``).  The gauges of the queue and of
the nodes are the scheduler's view (its ledger), pushed every EXPORT_EVERY_S seconds; the API
computes its own from the database.  Ray's metric objects are made by ``export_to_ray``, at the
actor's start, never at import.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

from conductor import metrics
from conductor.exceptions import DatabaseUnavailable, QueueUnavailable
from conductor.scheduler.ledger import Ledger

log = logging.getLogger(__name__)
#: How often the scheduler's gauges are pushed to Ray's metrics.
EXPORT_EVERY_S = 5.0
#: The scheduler's ledger gauges exported to Ray (the database-derived ones of /metrics, seen by the scheduler).
_LEDGER_GAUGES = ("conductor_jobs_pending", "conductor_jobs_running", "conductor_node_cpus",
                  "conductor_node_cpus_allocated", "conductor_node_memory_bytes",
                  "conductor_node_memory_allocated_bytes", "conductor_node_gpus", "conductor_node_gpus_allocated")
_COUNTERS = ("conductor_scheduler_passes_total", "conductor_jobs_ended_total", "conductor_account_cpu_seconds_total",
             "conductor_database_errors_total", "conductor_queue_errors_total")
MB = 1024 * 1024


class Telemetry:
    """Counts kept by the actor's event loop (one thread: no locks)."""

    def __init__(self) -> None:
        self.started_at_s = time.time()
        self._pass_duration = metrics.Histogram(metrics.PASS_BUCKETS_S)
        self._submit_to_start = metrics.Histogram(metrics.LATENCY_BUCKETS_S)
        self._passes = 0
        self._recent_passes: collections.deque[tuple[int, int]] = collections.deque()  # (second, passes in it)
        self._last_pass: tuple[float, float] | None = None  # (ended at, duration)
        self._last_full_pass_s: float | None = None
        self._loop_lag_s = 0.0
        self._errors = {"database": 0, "queue": 0}
        self._ray: dict[str, Any] = {}
        self._seen_tags: dict[str, set[tuple[tuple[str, str], ...]]] = {}

    def export_to_ray(self) -> None:
        """Create the Ray metric objects (inside the actor; a failure only costs the Ray side)."""
        try:
            from ray.util import metrics as ray_metrics

            for metric in metrics.CATALOGUE:
                if metric.name in _LEDGER_GAUGES or metric.name in ("conductor_scheduler_loop_lag_seconds",
                                                                     "conductor_scheduler_start_time_seconds"):
                    self._ray[metric.name] = ray_metrics.Gauge(metric.name, metric.help, tag_keys=metric.labels)
                elif metric.name in _COUNTERS:  # Ray's exporter adds _total itself
                    self._ray[metric.name] = ray_metrics.Counter(metric.name.removesuffix("_total"), metric.help,
                                                                 tag_keys=metric.labels)
                elif metric.kind == metrics.HISTOGRAM:
                    self._ray[metric.name] = ray_metrics.Histogram(metric.name, metric.help,
                                                                   boundaries=list(metric.buckets))
            self._ray["conductor_scheduler_start_time_seconds"].set(self.started_at_s)
        except Exception as exc:  # noqa: BLE001 - Ray's metrics are an extra; /metrics does not depend on them
            log.warning("Ray metrics unavailable: %s", exc)
            self._ray = {}

    # -- what the actor reports ------------------------------------------------------------

    def pass_ran(self, duration_s: float, *, full: bool = True) -> None:
        now_s = time.time()
        self._pass_duration.observe(duration_s)
        self._passes += 1
        self._last_pass = (now_s, duration_s)
        if full:
            self._last_full_pass_s = duration_s
        second = int(now_s)
        if self._recent_passes and self._recent_passes[-1][0] == second:
            self._recent_passes[-1] = (second, self._recent_passes[-1][1] + 1)
        else:
            self._recent_passes.append((second, 1))
        self._ray_call("conductor_scheduler_pass_duration_seconds", "observe", duration_s)
        self._ray_call("conductor_scheduler_passes_total", "inc", 1)

    def started(self, waited_s: float) -> None:
        """A job's first start, ``waited_s`` after its submit."""
        self._submit_to_start.observe(max(0.0, waited_s))
        self._ray_call("conductor_submit_to_start_seconds", "observe", max(0.0, waited_s))

    def ended(self, state: str, account: str, cpu_seconds: float) -> None:
        self._ray_call("conductor_jobs_ended_total", "inc", 1, {"state": state})
        if cpu_seconds > 0:
            self._ray_call("conductor_account_cpu_seconds_total", "inc", cpu_seconds, {"account": account})

    def error(self, exc: BaseException) -> None:
        """Count a database or queue failure (other exceptions are not counted here)."""
        kind = "database" if isinstance(exc, DatabaseUnavailable) else "queue" if isinstance(exc, QueueUnavailable) \
            else None
        if kind is not None:
            self._errors[kind] += 1
            self._ray_call(f"conductor_{kind}_errors_total", "inc", 1, {"component": "scheduler"})

    def loop_lag(self, lag_s: float) -> None:
        self._loop_lag_s = max(0.0, lag_s)
        self._ray_call("conductor_scheduler_loop_lag_seconds", "set", self._loop_lag_s)

    def figures(self) -> metrics.SchedulerFigures:
        now_s = time.time()
        while self._recent_passes and self._recent_passes[0][0] < now_s - 60:
            self._recent_passes.popleft()
        ended_at, duration = self._last_pass if self._last_pass else (None, None)
        return metrics.SchedulerFigures(
            started_at_s=self.started_at_s, passes_total=self._passes,
            passes_last_minute=sum(count for _, count in self._recent_passes), last_pass_duration_s=duration,
            last_full_pass_duration_s=self._last_full_pass_s,
            last_pass_at_s=ended_at, loop_lag_s=self._loop_lag_s, pass_duration=self._pass_duration.snapshot(),
            submit_to_start=self._submit_to_start.snapshot(), database_errors=self._errors["database"],
            queue_errors=self._errors["queue"])

    def export_ledger(self, ledger: Ledger) -> None:
        """Push the queue's and the nodes' gauges, as the scheduler's books have them, to Ray."""
        if not self._ray:
            return
        pending: collections.Counter = collections.Counter()
        for job in ledger.pending.values():
            pending[(("partition", job.job.spec.partition), ("reason", job.reason.value))] += 1
        running: collections.Counter = collections.Counter()
        for job in ledger.running.values():
            running[(("partition", job.job.spec.partition),)] += 1
        self._set_all("conductor_jobs_pending", pending)
        self._set_all("conductor_jobs_running", running)
        used = ledger.used()
        for node in ledger.nodes.values():
            held, tags = used.get(node.ray_node_id), {"node": node.name}
            for name, total, allocated in (
                    ("conductor_node_cpus", node.capacity.cpus, held.cpus if held else 0),
                    ("conductor_node_memory_bytes", node.capacity.memory_mb * MB, (held.memory_mb if held else 0) * MB),
                    ("conductor_node_gpus", node.capacity.gpus, held.gpus if held else 0)):
                self._ray_call(name, "set", total, tags)
                allocated_name = name.replace("_bytes", "_allocated_bytes") if name.endswith("_bytes") \
                    else f"{name}_allocated"
                self._ray_call(allocated_name, "set", allocated, tags)

    def _set_all(self, name: str, values: collections.Counter) -> None:
        """Set each label set's gauge; those seen before and absent now go to 0 (a gauge keeps its last value)."""
        seen = self._seen_tags.setdefault(name, set())
        for tags in seen - set(values):
            self._ray_call(name, "set", 0, dict(tags))
        for tags, value in values.items():
            self._ray_call(name, "set", value, dict(tags))
        seen |= set(values)

    def _ray_call(self, name: str, method: str, value: float, tags: dict[str, str] | None = None) -> None:
        metric = self._ray.get(name)
        if metric is None:
            return
        try:
            getattr(metric, method)(value, tags=tags) if tags else getattr(metric, method)(value)
        except Exception as exc:  # noqa: BLE001 - never let an export break scheduling
            log.debug("Ray metric %s: %s", name, exc)
