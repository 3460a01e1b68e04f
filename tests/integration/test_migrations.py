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
