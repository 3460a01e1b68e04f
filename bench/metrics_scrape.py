"""What one ``GET /metrics`` and one ``GET /api/status`` cost against a deep queue and a long history.

A fresh PostgreSQL database (and a SQLite file) gets ``--pending`` PENDING jobs and ``--ended``
COMPLETED ones (with start and end times, over 20 accounts), one node is recorded, and the API
(TestClient, no scheduler) is scraped ``--scrapes`` times; prints the median and p95 of each.

Run:  .venv/bin/python bench/metrics_scrape.py [--pending 100000] [--ended 100000] [--scrapes 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text, update

from api.app import create_app
from conductor import jobs
from conductor.config import Settings
from conductor.db.models import JobRow
from conductor.resources import Node, Resources
from conductor.service import JobService

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
BATCH = 5000


def fill(service: JobService, pending: int, ended: int, directory: str) -> None:
    service.repository.replace_nodes([Node("ray-n1", "n1", Resources(32, 65536, 0))])
    for start in range(0, pending + ended, BATCH):
        count = min(BATCH, pending + ended - start)
        service.repository.add_jobs([jobs.JobSpec(script="#!/bin/bash\ntrue\n", name="bench", user="bench",
                                                  working_dir=directory, account=f"acct{(start + i) % 20}")
                                     for i in range(count)])
    with service.repository.engine.begin() as connection:
        first = connection.execute(text("SELECT min(id) FROM jobs")).scalar()
        connection.execute(update(JobRow).where(JobRow.id < first + ended).values(
            state=jobs.JobState.COMPLETED.value, start_time=JobRow.submit_time, end_time=JobRow.submit_time))
        connection.execute(text("ANALYZE jobs"))  # as autovacuum would after such a change


def measure(settings: Settings, pending: int, ended: int, scrapes: int) -> dict[str, list[float]]:
    service = JobService.from_settings(settings)
    fill(service, pending, ended, str(settings.state_dir))
    timings: dict[str, list[float]] = {"/metrics": [], "/api/status": []}
    with TestClient(create_app(settings, service=service)) as client:
        for _ in range(scrapes):
            for path in timings:
                began = time.perf_counter()
                assert client.get(path).status_code == 200
                timings[path].append(time.perf_counter() - began)
    service.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--ended", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        name = f"conductor_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            for label, url in (("postgresql", PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"),
                               ("sqlite", f"sqlite:///{Path(directory) / 'bench.db'}")):
                settings = Settings(state_dir=Path(directory), database_url=url, node_name="n1")
                for path, values in measure(settings, args.pending, args.ended, args.scrapes).items():
                    values.sort()
                    print(f"{label:10} {path:12} {args.pending} pending, {args.ended} ended: median "
                          f"{statistics.median(values) * 1000:.0f} ms, p95 {values[int(len(values) * 0.95) - 1] * 1000:.0f} ms")
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
