"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from datetime import datetime, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from conductor.db.models import Base
from conductor.db.session import make_engine, migrate


def _drift(url: str) -> list:
    engine = make_engine(url)
    migrate(engine)
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_sqlite_schema_matches_models(tmp_path) -> None:
    assert _drift(f"sqlite:///{tmp_path / 'm.db'}") == []


def test_postgresql_schema_matches_models(pg_database: str) -> None:
    assert _drift(pg_database) == []


def test_migrate_twice_is_harmless(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    assert _drift(url) == [] and _drift(url) == []


def _upgrade(engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from conductor.db.session import _MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _reasons_split_on_upgrade(url: str) -> list[tuple[str, str]]:
    from sqlalchemy import text

    engine = make_engine(url)
    _upgrade(engine, "0004")
    with engine.begin() as connection:
        for index, reason in enumerate(("None", "NonZeroExitCode", "JobLaunchFailure: No such file: /x: y",
                                        "Requeued: scheduler stopped")):
            connection.execute(text(
                "INSERT INTO jobs (name, account, partition, \"user\", script, argv, working_dir, environment, "
                "cpus_per_task, ntasks_per_node, memory_per_node_mb, priority, nice, requeue, restart_count, state, "
                "reason, submit_time, stdout_path, stderr_path) VALUES (:name, '', 'p', 'u', 'true', '[]', '/', '{}', "
                "1, 1, 0, 0, 0, true, 0, 'FAILED', :reason, CURRENT_TIMESTAMP, '', '')"),
                {"name": f"j{index}", "reason": reason})
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT reason, reason_message FROM jobs ORDER BY name")).all()
    engine.dispose()
    return [tuple(row) for row in rows]


SPLIT = [("None", ""), ("NonZeroExitCode", ""), ("JobLaunchFailure", "No such file: /x: y"),
         ("Requeued", "scheduler stopped")]


def test_sqlite_upgrade_splits_reasons_into_code_and_message(tmp_path) -> None:
    assert _reasons_split_on_upgrade(f"sqlite:///{tmp_path / 'split.db'}") == SPLIT


def test_postgresql_upgrade_splits_reasons_into_code_and_message() -> None:
    from tests.conftest import empty_pg_database

    with empty_pg_database("conductor_split") as url:
        assert _reasons_split_on_upgrade(url) == SPLIT


def _totals_after_upgrade(url: str) -> list[tuple]:
    """Jobs written before 0010 are counted by its backfill; later changes by its triggers."""
    from sqlalchemy import text

    engine = make_engine(url)
    _upgrade(engine, "0009")
    with engine.begin() as connection:
        for index, (state, account, cpus) in enumerate([("COMPLETED", "a", 2), ("COMPLETED", "a", 3),
                                                        ("FAILED", "b", 1), ("PENDING", "a", 4)]):
            ran = state != "PENDING"
            connection.execute(text(
                "INSERT INTO jobs (name, account, partition, \"user\", script, argv, working_dir, environment, "
                "cpus_per_task, ntasks_per_node, nodes, memory_per_node_mb, priority, nice, requeue, restart_count, "
                "state, reason, submit_time, start_time, end_time, stdout_path, stderr_path) VALUES (:name, :account, "
                "'p', 'u', 'true', '[]', '/', '{}', :cpus, 1, 1, 0, 0, 0, true, 0, :state, 'None', :start, :start, "
                ":end, '', '')"),
                {"name": f"j{index}", "account": account, "cpus": cpus, "state": state,
                 "start": datetime(2026, 1, 1, tzinfo=timezone.utc),
                 "end": datetime(2026, 1, 1, 0, 10, tzinfo=timezone.utc) if ran else None})
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET state = 'CANCELLED', end_time = start_time WHERE state = 'PENDING'"))
        rows = connection.execute(text("SELECT state, account, jobs, cpu_seconds FROM job_totals "
                                       "WHERE jobs > 0 ORDER BY state, account")).all()
    engine.dispose()
    return [(state, account, count, round(seconds, 3)) for state, account, count, seconds in rows]


UPGRADED_TOTALS = [("CANCELLED", "a", 1, 0.0), ("COMPLETED", "a", 2, 3000.0), ("FAILED", "b", 1, 600.0)]


def test_sqlite_upgrade_counts_the_jobs_already_there(tmp_path) -> None:
    assert _totals_after_upgrade(f"sqlite:///{tmp_path / 'totals.db'}") == UPGRADED_TOTALS


def test_postgresql_upgrade_counts_the_jobs_already_there() -> None:
    from tests.conftest import empty_pg_database

    with empty_pg_database("conductor_totals") as url:
        assert _totals_after_upgrade(url) == UPGRADED_TOTALS
