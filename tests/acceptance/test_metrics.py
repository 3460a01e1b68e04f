"""GET /metrics on a real API beside a real scheduler on the session's Ray: the numbers move as jobs do."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from conductor.config import Settings
from tests.helpers import wait_for

pytestmark = pytest.mark.ray

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def _submit(client: TestClient, script: str, tmp_path: Path, **fields: object) -> int:
    job = {"current_working_directory": str(tmp_path), "cpus_per_task": 3, "account": "physics", **fields}
    answer = client.post("/api/jobs/submit", json={"job": job, "script": f"#!/bin/bash\n{script}"})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["job_id"]


def _state(client: TestClient, job_id: int) -> str:
    return client.get(f"/api/jobs/{job_id}").json()["state"]


def test_metrics_follow_jobs_through_the_queue(settings_factory, scheduler_factory, tmp_path: Path) -> None:
    settings: Settings = settings_factory("postgres-redis")
    scheduler_factory(settings)
    go = tmp_path / "go"
    with TestClient(create_app(settings, check_ray=True)) as client:
        before = scrape(client)
        assert value(before, "conductor_scheduler_up") == 1
        first = _submit(client, f"while [ ! -e {go} ]; do sleep 0.05; done\n", tmp_path)
        second = _submit(client, "true\n", tmp_path, dependency=f"afterok:{first}")
        wait_for(lambda: _state(client, first) == "RUNNING", 30)
        wait_for(lambda: value(scrape(client), "conductor_jobs_pending", partition="default", reason="Dependency") == 1,
                 10)
        during = scrape(client)
        assert value(during, "conductor_submissions_total") == value(before, "conductor_submissions_total") + 2
        assert value(during, "conductor_jobs_running", partition="default") == 1
        assert value(during, "conductor_node_cpus_allocated", node="testnode") == 3
        assert value(during, "conductor_node_cpus", node="testnode") == 32
        assert value(during, "conductor_node_memory_bytes", node="testnode") == 64 * 1024 ** 3
        assert value(during, "conductor_oldest_pending_job_age_seconds") > 0
        go.touch()
        wait_for(lambda: _state(client, second) == "COMPLETED", 30)
        after = scrape(client)
        completed = ("conductor_jobs_ended_total", {"state": "COMPLETED"})
        assert value(after, completed[0], **completed[1]) == value(before, completed[0], **completed[1]) + 2
        assert total(after, "conductor_jobs_pending") == 0 and total(after, "conductor_jobs_running") == 0
        assert value(after, "conductor_node_cpus_allocated", node="testnode") == 0
        assert value(after, "conductor_account_cpu_seconds_total", account="physics") > 0
        # the scheduler's own figures, from its describe()
        assert value(after, "conductor_submit_to_start_seconds_count") >= 2
        assert value(after, "conductor_submit_to_start_seconds_bucket", le="+Inf") >= 2
        assert value(after, "conductor_scheduler_pass_duration_seconds_count") > \
            value(before, "conductor_scheduler_pass_duration_seconds_count")
        assert value(after, "conductor_scheduler_passes_total") >= value(after,
                                                                           "conductor_scheduler_pass_duration_seconds_count")
        assert 0 <= value(after, "conductor_scheduler_loop_lag_seconds") < 1
        assert value(after, "conductor_database_errors_total", component="scheduler") == 0
        assert value(after, "conductor_queue_errors_total", component="api") == 0
        assert "script" not in client.get("/metrics").text  # aggregates only: no job's details
    _ray_has_the_schedulers_metrics()


def _ray_has_the_schedulers_metrics() -> None:
    """The same figures through ray.util.metrics, on the node's Ray metrics endpoint (names prefixed ray_)."""
    import ray

    ports = [node["MetricsExportPort"] for node in ray.nodes() if node["Alive"] and node.get("MetricsExportPort")]
    assert ports

    def exported() -> bool:
        text = "".join(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                       for port in ports)
        return "ray_conductor_scheduler_passes_total" in text and "ray_conductor_submit_to_start_seconds_bucket" in text

    wait_for(exported, 30, interval_s=1.0, message="Ray's metrics endpoint never showed conductor's")


def test_metrics_need_a_token_under_auth_token(settings_factory, tmp_path: Path) -> None:
    from conductor.service import JobService

    settings = settings_factory("sqlite-embedded", auth="token")
    service = JobService.from_settings(settings)
    token = service.token_store().create("prometheus")
    with TestClient(create_app(settings, service=service)) as client:
        assert client.get("/metrics").status_code == 401
        assert json.loads(client.get("/metrics").text)["error"]["code"] == "unauthenticated"
        samples = scrape(client, Authorization=f"Bearer {token}")
        assert ("conductor_submissions_total", ()) in samples
    service.close()
