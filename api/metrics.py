"""``GET /metrics``: conductor's Prometheus metrics (prometheus-client), computed when scraped.

The database figures come from aggregate queries at each scrape (``JobService.queue_summary``,
``nodes``, ``totals``, ``oldest_pending``), so they are true whichever process restarted; the
scheduler's figures (pass durations, submit -> start, loop lag, its error counts) come from the
scheduler actor's ``describe()`` when this API runs beside it (``conductor up``); the API's own
database and queue errors are counted here.  ``conductor.metrics.CATALOGUE`` names them all.

With AUTH=token a scrape needs a token (any user's: create one for the scraper and give it to
Prometheus as ``authorization: credentials``): the figures are aggregates, but they name
accounts and nodes.  No job, user or script appears in them.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from api.deps import CallerDep
from conductor import jobs, metrics
from conductor.exceptions import DatabaseUnavailable, QueueUnavailable, ServiceUnavailable
from conductor.scheduler import handle as scheduler
from conductor.service import JobService

router = APIRouter(tags=["metrics"])
MB = 1024 * 1024


class ApiErrors:
    """Database and queue failures this API process met (counted by the error handlers and the scrape)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = {"database": 0, "queue": 0}

    def count(self, exc: BaseException) -> None:
        kind = "database" if isinstance(exc, DatabaseUnavailable) else "queue" if isinstance(exc, QueueUnavailable) \
            else None
        if kind is not None:
            with self._lock:
                self.counts[kind] += 1


def family(name: str) -> Any:
    """An empty family for the catalogue's ``name``, with its help and labels."""
    metric = metrics.BY_NAME[name]
    kind = {metrics.GAUGE: GaugeMetricFamily, metrics.COUNTER: CounterMetricFamily}[metric.kind]
    return kind(name, metric.help, labels=list(metric.labels))


def _histogram(name: str, snapshot: metrics.HistogramSnapshot) -> HistogramMetricFamily:
    bounds = [*(repr(float(b)) for b in snapshot.bounds), "+Inf"]
    return HistogramMetricFamily(name, metrics.BY_NAME[name].help, buckets=list(zip(bounds, snapshot.cumulative)),
                                 sum_value=snapshot.sum)


class ConductorCollector:
    """prometheus-client's custom collector over the app's service and its scheduler."""

    def __init__(self, state: Any) -> None:
        self._state = state  # the app's state: service (set at startup), settings, check_ray, api_errors

    def describe(self) -> list[Metric]:
        return []  # nothing is collected when registered

    def collect(self) -> Iterator[Metric]:
        try:
            yield from _database_families(self._state.service)
        except ServiceUnavailable as exc:  # the scrape still answers with what it has
            self._state.api_errors.count(exc)
        answered, found = scheduler.describe(self._state.settings, check=self._state.check_ray)
        figures = found.figures if isinstance(found, scheduler.Status) else None
        if answered is not None:
            up = family("conductor_scheduler_up")
            up.add_metric([], 1 if answered else 0)
            yield up
        if figures is not None:
            yield from _scheduler_families(figures)
        yield from _error_families(self._state.api_errors.counts, figures)


def _database_families(service: JobService) -> Iterator[Metric]:
    pending, running = family("conductor_jobs_pending"), family("conductor_jobs_running")
    running_by: dict[str, int] = {}
    for state, reason, partition, count, _cpus in service.queue_summary():
        if state == jobs.JobState.PENDING.value:
            pending.add_metric([partition, reason.value], count)
        else:
            running_by[partition] = running_by.get(partition, 0) + count
    for partition, count in sorted(running_by.items()):
        running.add_metric([partition], count)
    totals = service.totals()
    ended, submitted = family("conductor_jobs_ended_total"), family("conductor_submissions_total")
    for state in sorted(state.value for state in jobs.TERMINAL_STATES):
        ended.add_metric([state], totals.ended.get(state, 0))
    submitted.add_metric([], totals.submitted)
    accounts = family("conductor_account_cpu_seconds_total")
    for account, seconds in sorted(totals.cpu_seconds.items()):
        accounts.add_metric([account], seconds)
    oldest, found = family("conductor_oldest_pending_job_age_seconds"), service.oldest_pending()
    oldest.add_metric([], max(0.0, time.time() - found.submit_time.timestamp()) if found else 0.0)
    yield from (pending, running, ended, submitted, accounts, oldest)
    yield from _node_families(service)


def _node_families(service: JobService) -> Iterator[Metric]:
    names = ("conductor_node_up", "conductor_node_cpus", "conductor_node_cpus_allocated", "conductor_node_memory_bytes",
             "conductor_node_memory_allocated_bytes", "conductor_node_gpus", "conductor_node_gpus_allocated")
    families = {name: family(name) for name in names}
    for node, used in service.nodes():
        values = (1 if node.alive else 0, node.capacity.cpus, used.cpus, node.capacity.memory_mb * MB,
                  used.memory_mb * MB, node.capacity.gpus, used.gpus)
        for name, value in zip(names, values):
            families[name].add_metric([node.name], value)
    yield from families.values()


def _scheduler_families(figures: metrics.SchedulerFigures) -> Iterator[Metric]:
    started, passes = family("conductor_scheduler_start_time_seconds"), family("conductor_scheduler_passes_total")
    started.add_metric([], figures.started_at_s)
    passes.add_metric([], figures.passes_total)
    lag = family("conductor_scheduler_loop_lag_seconds")
    lag.add_metric([], figures.loop_lag_s)
    yield from (started, passes, lag)
    yield _histogram("conductor_scheduler_pass_duration_seconds", figures.pass_duration)
    yield _histogram("conductor_submit_to_start_seconds", figures.submit_to_start)


def _error_families(api_counts: dict[str, int], figures: metrics.SchedulerFigures | None) -> Iterator[Metric]:
    for kind in ("database", "queue"):
        errors = family(f"conductor_{kind}_errors_total")
        errors.add_metric(["api"], api_counts[kind])
        if figures is not None:
            errors.add_metric(["scheduler"], figures.database_errors if kind == "database" else figures.queue_errors)
        yield errors


def install(app: Any) -> None:
    """The app's metrics registry (one per app, made here: nothing at import) and the /metrics route."""
    app.state.api_errors = ApiErrors()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConductorCollector(app.state))
    app.state.metrics_registry = registry
    app.include_router(router)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}, "description": "Prometheus' text format."}})
def scrape(request: Request, _caller: CallerDep) -> Response:
    """conductor's metrics in Prometheus' text format (or OpenMetrics when the scraper's Accept asks for it):
    queue, nodes, accounts, the scheduler's own figures."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(request.app.state.metrics_registry), headers={"Content-Type": content_type})
