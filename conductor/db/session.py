"""Engine and session factory, and Alembic migrations applied at start.  Nothing at import time."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from conductor.db.errors import translate_errors

_MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: SQLite waits this long for a writer in another process before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: A server that does not answer is reported unavailable after this long, not after TCP's minutes.
CONNECT_TIMEOUT_S = 5
#: Waiting longer than this for a pooled connection means overload: DatabaseUnavailable (503).
POOL_TIMEOUT_S = 10
#: TCP keepalives on PostgreSQL connections: a server that vanished without closing them (host
#: down, network cut) is noticed after about idle + interval x count seconds, instead of a
#: database call hanging for the kernel's two hours.  (A server that ends a connection itself,
#: as pg_terminate_backend or a restart do, is noticed at once: pool_pre_ping and retries.)
PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and a busy timeout so API and scheduler share it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = ({"connect_timeout": CONNECT_TIMEOUT_S, **PG_KEEPALIVES}
                    if parsed.get_backend_name() == "postgresql" else {})
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size * 2,
                         pool_timeout=POOL_TIMEOUT_S, connect_args=connect_args)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API connection
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    with translate_errors(), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
