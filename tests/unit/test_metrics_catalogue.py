"""The metric catalogue: what /metrics exports, the histogram counts, and the Grafana dashboard's queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api import metrics as api_metrics
from api.app import create_app
from conductor import metrics
from conductor.config import Settings
from conductor.service import JobService
from tests.helpers import node

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "conductor.json"
#: PromQL words that are not metric names (aggregations, operators, modifiers).
PROMQL_WORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                          "bool", "offset", "le", "inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are neither functions, label
    matchers and groupings, ranges, strings nor keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end():].lstrip()
        if following.startswith("(") or match.group().lower() in PROMQL_WORDS:
            continue  # a function call, or a keyword
        names.add(match.group())
    return names


def test_the_expression_parser_finds_metric_names_and_only_them() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, node) (rate(conductor_x_bucket{state="A b"}[5m]))) '
            "/ on(node) group_left conductor_y > bool 0 or vector(0)")
    assert metric_names(expr) == {"conductor_x_bucket", "conductor_y"}
    assert metric_names("time() - max(conductor_scheduler_start_time_seconds)") == {
        "conductor_scheduler_start_time_seconds"}


def test_every_dashboard_query_names_only_metrics_conductor_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 15
    exported = metrics.exported_series_names()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for first_look in ("queue depth by reason", "running", "node cpu", "pass duration", "submit to start", "errors",
                       "account"):
        assert first_look in titles, first_look


def _scraped_families(tmp_path: Path) -> dict[str, str]:
    settings = Settings(state_dir=tmp_path, node_name="n1")
    service = JobService.from_settings(settings)
    service.repository.replace_nodes([node("n1", 8, 16384, ray_node_id="r1")])
    with TestClient(create_app(settings, service=service)) as client:
        text = client.get("/metrics").text
    service.close()
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_the_catalogue_is_what_metrics_exports(tmp_path: Path) -> None:
    """Names and types as Prometheus' parser reads them: the database's and the API's from a real scrape,
    the scheduler's from the families the API builds out of its figures."""
    found = _scraped_families(tmp_path)
    figures = metrics.SchedulerFigures(started_at_s=1.0)
    found |= {family.name: family.type for family in api_metrics._scheduler_families(figures)}
    found["conductor_scheduler_up"] = "gauge"  # only shown when the API runs beside a scheduler (acceptance test)
    expected = {m.name.removesuffix("_total") if m.kind == metrics.COUNTER else m.name: m.kind
                for m in metrics.CATALOGUE}
    assert found == expected
    for metric in metrics.CATALOGUE:
        assert metric.name.startswith("conductor_") and (metric.kind == metrics.COUNTER) == metric.name.endswith("_total")


def test_histogram_counts_are_cumulative_and_le_is_inclusive() -> None:
    histogram = metrics.Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        histogram.observe(value)
    snapshot = histogram.snapshot()
    assert snapshot.cumulative == (2, 3, 4) and snapshot.count == 4 and abs(snapshot.sum - 2.65) < 1e-9
    assert snapshot.quantile(0.5) == 0.1 and snapshot.quantile(0.75) == 1.0 and snapshot.quantile(1.0) is None
