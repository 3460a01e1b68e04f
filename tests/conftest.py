"""Shared fixtures: real PostgreSQL, Redis and Ray.  A missing service skips locally, fails in CI."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import redis
from sqlalchemy import create_engine, text

from conductor.config import Settings
from conductor.db.repository import JobRepository
from conductor.db.session import make_engine, migrate
from conductor.service import JobService
from tests.helpers import free_port, wait_for

PG_ADMIN_URL = os.environ.get("CONDUCTOR_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("CONDUCTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
#: The session's Ray node: the seed's 32-CPU node, with its memory declared (Ray would see ~16 GiB here).
RAY_NODE_CPUS = 32
RAY_NODE_MEMORY_MB = 64 * 1024
IN_CI = bool(os.environ.get("CI"))

BACKENDS = ["postgres-redis", "sqlite-embedded"]
#: Every Ray namespace (and so Redis stream) of this test session starts with this.
SESSION_PREFIX = f"test{uuid.uuid4().hex[:6]}-"


def _missing(what: str, exc: Exception) -> None:
    message = f"{what} is not available: {exc}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def _clean_environment() -> Iterator[None]:
    """Settings are built explicitly in tests; keep the caller's CONDUCTOR_* out of subprocesses."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("CONDUCTOR_")}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


@contextlib.contextmanager
def empty_pg_database(prefix: str = "conductor_test") -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards; skips (fails in CI) without PostgreSQL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        _missing("PostgreSQL", exc)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, migrated once."""
    with empty_pg_database() as url:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The test Redis; the streams this session created are deleted at its end."""
    try:
        client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        _missing("Redis", exc)
    yield REDIS_TEST_URL
    for key in client.scan_iter(f"conductor:{SESSION_PREFIX}*"):
        client.delete(key)


def _truncate(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE resource_allocations, queue_entries, nodes, jobs, api_tokens, users RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for one backend, a private Ray namespace and a private state directory."""

    def make(backend: str, **overrides: object) -> Settings:
        values: dict[str, object] = dict(
            state_dir=tmp_path / "state", ray_namespace=f"{SESSION_PREFIX}{uuid.uuid4().hex[:8]}", kill_wait_s=2.0,
            node_name="testnode")
        if backend == "postgres-redis":
            url = request.getfixturevalue("pg_database")
            _truncate(url)
            # Each test's stream key holds its own namespace; never flush: another test run
            # (a second checkout, CI) may be using the same Redis database.
            values.update(database_url=url, redis_url=request.getfixturevalue("redis_url"))
        else:
            values.update(database_url=f"sqlite:///{tmp_path / 'state' / 'conductor.db'}")
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(backend: str, settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(backend)


@pytest.fixture
def service(settings: Settings) -> Iterator[JobService]:
    svc = JobService.from_settings(settings)
    yield svc
    svc.close()


@pytest.fixture
def repository(service: JobService) -> JobRepository:
    return service.repository


#: Ray's health check on the session cluster: a killed node is seen dead within about 3 s.
RAY_HEALTH_CHECK = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}


@pytest.fixture(scope="session")
def ray_local_cluster() -> Iterator[object]:
    """One local Ray for the whole session, as a ``ray.cluster_utils.Cluster``: its head is a
    32-CPU node with 64 GiB declared.  Multi-node tests add (and remove) nodes to it."""
    import ray
    from ray.cluster_utils import Cluster

    from cluster.connection import OBJECT_STORE_BYTES

    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=RAY_NODE_CPUS, memory=RAY_NODE_MEMORY_MB * 1024 * 1024, object_store_memory=OBJECT_STORE_BYTES,
        include_dashboard=True, dashboard_port=free_port(), node_name="testnode", _system_config=RAY_HEALTH_CHECK))
    ray.init(address=cluster.address, namespace="conductor-tests", log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="session")
def ray_cluster(ray_local_cluster: object) -> Iterator[str]:
    """The session's Ray, connected: its GCS address."""
    import ray

    yield ray.get_runtime_context().gcs_address


@pytest.fixture
def scheduler_factory(ray_cluster: str) -> Iterator[Callable[[Settings], object]]:
    """Start scheduler actors; stop and remove them after the test, and wait until Ray is idle again."""
    import ray

    from conductor.keeper import handle as keeper_handle
    from conductor.scheduler import handle as scheduler
    from tests.helpers import ray_used_by_node

    handles, namespaces = [], set()

    def start(settings: Settings) -> object:
        handle = scheduler.get_or_create(settings)
        handles.append(handle)
        namespaces.add(settings.ray_namespace)
        scheduler.start(handle)
        return handle

    yield start
    for handle in handles:
        try:
            ray.get(handle.stop.remote(), timeout=60)
        except Exception:  # noqa: BLE001 - a test may have killed it: its keepers are stopped below
            pass
        finally:
            ray.kill(handle, no_restart=True)
    for namespace in namespaces:  # the keepers (and the jobs they still run) of the test's cluster
        keeper_handle.kill_all(namespace)
    wait_for(lambda: all(u.cpus == 0 and u.memory_mb == 0 for u in ray_used_by_node().values()), timeout_s=30)
