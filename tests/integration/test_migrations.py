"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

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
