"""Fault-injection helpers: processes to kill, a Redis of the test's own, run markers written by job scripts."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import _missing
from tests.helpers import wait_for

#: Ports this suite may give its own redis-server (never the shared 6379).
OWN_REDIS_PORTS = range(16390, 16400)

#: A job script that records each run (one line per attempt, with its restart count and pid),
#: then waits while the hold file exists, then records its end.
MARKED_SCRIPT = ('#!/bin/bash\necho "$CONDUCTOR_RESTART_COUNT $$ $PPID" >> {markers}/runs-$SLURM_JOB_ID\n'
                 'while [ -e {hold} ]; do sleep 0.1; done\n'
                 'echo done >> {markers}/ends-$SLURM_JOB_ID\n')


def marked_script(markers: Path, hold: Path) -> str:
    return MARKED_SCRIPT.format(markers=markers, hold=hold)


def runs_of(markers: Path, job_id: int) -> list[tuple[int, int, int]]:
    """(restart count, script pid, Ray worker pid) for each run of the job, from its marker file."""
    try:
        lines = (markers / f"runs-{job_id}").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [tuple(int(x) for x in line.split()) for line in lines]  # type: ignore[misc]


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def actor_pid(handle) -> int:  # noqa: ANN001 - a Ray actor handle
    """The process id of a live actor, asked of the actor itself.

    (Ray's state API would need the cluster's address: other Ray instances may run on this host.)
    """
    import ray

    return ray.get(handle.__ray_call__.remote(lambda _actor: os.getpid()), timeout=30)


def _free_port() -> int:
    for port in OWN_REDIS_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip(f"no free port in {OWN_REDIS_PORTS} for a redis-server of our own")


class OwnRedis:
    """A redis-server of the test's own, on its own port and directory, without persistence.

    ``stop`` kills it (SIGKILL: nothing saved), ``start`` starts it again, empty, on the same port:
    the worst case of a Redis restart, where the stream and its consumer group are gone.
    """

    def __init__(self, binary: str, directory: Path, port: int) -> None:
        self.binary, self.directory, self.port = binary, directory, port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.directory / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            wait_for(lambda: _answers(client), 10, message=f"redis-server on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def _answers(client) -> bool:  # noqa: ANN001
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A running redis-server of this test's own; stopped (by pid) at the end."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        _missing("redis-server", FileNotFoundError(binary))
    server = OwnRedis(binary, tmp_path / "redis", _free_port())
    server.start()
    yield server
    server.stop()


def wait_until(predicate, timeout_s: float, message: str = ""):  # noqa: ANN001, ANN201
    """wait_for with a coarser interval, for checks that query the database."""
    return wait_for(predicate, timeout_s, interval_s=0.1, message=message)


def queue_unacknowledged(settings) -> int:  # noqa: ANN001 - Settings
    """Entries still waiting for an acknowledgement: the consumer group's PEL, or the embedded table's rows."""
    if settings.uses_redis:
        import redis

        from conductor.queue import GROUP, stream_key

        client = redis.Redis.from_url(settings.redis_url)
        try:
            return client.xpending(stream_key(settings.ray_namespace), GROUP)["pending"]
        except redis.ResponseError:  # no stream or group (yet)
            return 0
        finally:
            client.close()
    from sqlalchemy import text

    from conductor.db.session import make_engine

    engine = make_engine(settings.effective_database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM queue_entries")).scalar())
    finally:
        engine.dispose()
