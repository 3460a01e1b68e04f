"""The job queue: job ids from the service to the scheduler, delivered at least once.

Two implementations that behave the same from outside:

* Redis (REDIS_URL set): a stream ``conductor:<namespace>:jobs`` with the consumer
  group ``scheduler``.  An entry stays pending until the scheduler acknowledges it,
  after the job's final state is committed; a restarted scheduler re-reads its own
  pending entries and claims those of a dead consumer (XAUTOCLAIM).
* Embedded (no REDIS_URL): a ``queue_entries`` table in conductor's own database,
  with a wake-up datagram on an abstract Unix socket so the scheduler blocks instead of
  polling.  Producer and scheduler must share a host, as they do with SQLite.

Every Redis key name lives in this module.  The queue carries ids only (invariant 1):
anything in it can be rebuilt from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator, Protocol, Sequence

import redis
import redis.asyncio as aioredis
from sqlalchemy import Engine, delete, select, update

from conductor.config import Settings, redact_url
from conductor.db.models import QueueEntryRow
from conductor.db.errors import translate_errors
from conductor.exceptions import QueueUnavailable

log = logging.getLogger(__name__)

GROUP = "scheduler"
#: The stream fields: the job id, the operation, and its argument (a signal number, say).
JOB_FIELD, OP_FIELD, ARG_FIELD = "job", "op", "arg"
#: Operations an entry may carry.  SUBMIT entries stay pending until the job ends; the
#: others are control messages, acknowledged once handled.
SUBMIT, CANCEL, SIGNAL, RELOAD, REQUEUE = "submit", "cancel", "signal", "reload", "requeue"
OPERATIONS = (SUBMIT, CANCEL, SIGNAL, RELOAD, REQUEUE)
#: How long a blocking read waits before returning empty (a safety net, not a poll period).
DEFAULT_BLOCK_S = 5.0
#: The consumer's socket timeout: a blocking read never waits longer than half of it.
CONSUMER_SOCKET_TIMEOUT_S = 30.0


def stream_key(namespace: str) -> str:
    """The Redis stream of job ids for one conductor cluster (Ray namespace)."""
    return f"conductor:{namespace}:jobs"


@dataclass(frozen=True)
class Entry:
    """One delivery: the queue's entry id, the job id it carries, and what it asks."""

    entry_id: str
    job_id: int
    op: str = SUBMIT
    arg: str = ""


class JobQueue(Protocol):
    """Producer side, used by the service after the job row is committed."""

    def push(self, job_ids: Sequence[int], op: str = SUBMIT, arg: str = "") -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class QueueConsumer(Protocol):
    """Consumer side, used by the scheduler actor."""

    async def read(self, count: int, block_s: float) -> list[Entry]: ...

    async def ack(self, entry_ids: Sequence[str]) -> None: ...

    def rewind(self) -> None:
        """Deliver every unacknowledged entry again on the next read (after a failed hand-off)."""

    async def close(self) -> None: ...


@contextlib.contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError) as exc:
        # ResponseError here is READONLY (failover), OOM, MISCONF...: Redis refuses for now
        raise QueueUnavailable(str(exc) or type(exc).__name__) from exc


# -- Redis ---------------------------------------------------------------------------------


class RedisQueue:
    """Producer over a Redis stream."""

    def __init__(self, url: str, namespace: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._key = stream_key(namespace)

    def push(self, job_ids: Sequence[int], op: str = SUBMIT, arg: str = "") -> None:
        if not job_ids:
            return
        fields = {} if op == SUBMIT else {OP_FIELD: op, ARG_FIELD: arg}
        with _redis_errors():
            pipe = self._client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.xadd(self._key, {JOB_FIELD: job_id, **fields})
            pipe.execute()

    def ping(self) -> None:
        with _redis_errors():
            self._client.ping()

    def close(self) -> None:
        self._client.close()


class RedisConsumer:
    """The scheduler's side of the stream: own pending entries first, then claimed, then new."""

    def __init__(self, url: str, namespace: str, consumer: str) -> None:
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_keepalive=True,
                                               socket_timeout=CONSUMER_SOCKET_TIMEOUT_S)
        self._key = stream_key(namespace)
        self._consumer = consumer
        self._recovered = False

    async def read(self, count: int, block_s: float) -> list[Entry]:
        with _redis_errors():
            if not self._recovered:
                entries = await self._recover(count)
                self._recovered = True
                if entries:
                    return entries
            block_ms = max(1, int(min(block_s, CONSUMER_SOCKET_TIMEOUT_S / 2) * 1000))
            try:
                reply = await self._client.xreadgroup(GROUP, self._consumer, {self._key: ">"}, count=count,
                                                      block=block_ms)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._recovered = False  # the stream was deleted: recreate the group next time
                return []
        return await self._parsed([m for _stream, messages in reply or [] for m in messages])

    async def _parsed(self, messages: list) -> list[Entry]:
        """Entries of well-formed messages; a malformed one is logged and dropped, not retried forever."""
        entries, poison = [], []
        for entry_id, fields in messages:
            try:
                entries.append(_entry(entry_id, fields))
            except (KeyError, TypeError, ValueError):
                poison.append(entry_id)
        if poison:
            log.warning("dropping %d malformed queue entries: %s", len(poison), poison[:10])
            await self.ack([p.decode() if isinstance(p, bytes) else p for p in poison])
        return entries

    async def _recover(self, count: int) -> list[Entry]:
        """Create the group if needed; return what this consumer or a dead one left unacknowledged."""
        try:
            await self._client.xgroup_create(self._key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        found: list = []
        start = "0-0"
        while True:  # one scheduler per cluster (the lease): any other consumer's entries are orphans
            start, claimed, *_ = await self._client.xautoclaim(
                self._key, GROUP, self._consumer, min_idle_time=0, start_id=start, count=max(count, 100))
            found.extend((entry_id, fields) for entry_id, fields in claimed if fields)
            if start in (b"0-0", "0-0"):
                return await self._parsed(found)

    def rewind(self) -> None:
        self._recovered = False

    async def ack(self, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        with _redis_errors():
            pipe = self._client.pipeline(transaction=False)
            pipe.xack(self._key, GROUP, *entry_ids)
            pipe.xdel(self._key, *entry_ids)
            await pipe.execute()

    async def close(self) -> None:
        await self._client.aclose()


def _entry(entry_id: bytes | str, fields: dict) -> Entry:
    decoded = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
               for k, v in fields.items()}
    op = decoded.get(OP_FIELD, SUBMIT)
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}")
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return Entry(text, int(decoded[JOB_FIELD]), op, decoded.get(ARG_FIELD, ""))


# -- Embedded ------------------------------------------------------------------------------


def wakeup_address(database_url: str) -> str:
    """Abstract Unix socket name shared by the producers and the consumer of one database."""
    digest = hashlib.sha1(database_url.encode()).hexdigest()[:20]
    return f"\0conductor-queue-{digest}"


class EmbeddedQueue:
    """Producer over the ``queue_entries`` table, plus a wake-up datagram."""

    def __init__(self, engine: Engine, database_url: str) -> None:
        self._engine = engine
        self._address = wakeup_address(database_url)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def push(self, job_ids: Sequence[int], op: str = SUBMIT, arg: str = "") -> None:
        if not job_ids:
            return
        now = datetime.now(timezone.utc)
        rows = [{"job_id": job_id, "delivered": False, "enqueued_at": now, "op": op, "arg": arg} for job_id in job_ids]
        with translate_errors(), self._engine.begin() as connection:
            connection.execute(QueueEntryRow.__table__.insert(), rows)
        with contextlib.suppress(OSError):  # no scheduler listening: it reads the table when it starts
            self._socket.sendto(b"1", self._address)

    def ping(self) -> None:
        with translate_errors(), self._engine.connect() as connection:
            connection.execute(select(1))

    def close(self) -> None:
        self._socket.close()


class EmbeddedConsumer:
    """Reads undelivered rows, marking them delivered; at start every unacknowledged row is redelivered."""

    def __init__(self, engine: Engine, database_url: str) -> None:
        self._engine = engine
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        try:
            self._socket.bind(wakeup_address(database_url))
        except OSError as exc:
            self._socket.close()
            raise QueueUnavailable(f"another scheduler already consumes the embedded queue of {database_url}") from exc
        self._recovered = False

    async def read(self, count: int, block_s: float) -> list[Entry]:
        if not self._recovered:
            self._redeliver_all()
            self._recovered = True
        entries = self._take(count)
        if entries:
            return entries
        await self._wait(block_s)
        return self._take(count)

    def _redeliver_all(self) -> None:
        with translate_errors(), self._engine.begin() as connection:
            connection.execute(update(QueueEntryRow).values(delivered=False))

    def _take(self, count: int) -> list[Entry]:
        self._drain_wakeups()
        table = QueueEntryRow.__table__
        with translate_errors(), self._engine.begin() as connection:
            rows = connection.execute(
                select(table.c.id, table.c.job_id, table.c.op, table.c.arg).where(table.c.delivered.is_(False))
                .order_by(table.c.id).limit(count)).all()
            if rows:
                connection.execute(update(table).where(table.c.id.in_([r.id for r in rows])).values(delivered=True))
        return [Entry(str(row.id), int(row.job_id), row.op, row.arg) for row in rows]

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                self._socket.recv(64)

    async def _wait(self, block_s: float) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(loop.sock_recv(self._socket, 64), timeout=block_s)

    def rewind(self) -> None:
        self._recovered = False

    async def ack(self, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        table = QueueEntryRow.__table__
        with translate_errors(), self._engine.begin() as connection:
            connection.execute(delete(table).where(table.c.id.in_([int(i) for i in entry_ids])))

    async def close(self) -> None:
        self._socket.close()


# -- construction --------------------------------------------------------------------------


def make_queue(settings: Settings, engine: Engine) -> JobQueue:
    """The producer for these settings: Redis when REDIS_URL is set, else the embedded queue."""
    if settings.uses_redis:
        return RedisQueue(settings.redis_url, settings.ray_namespace)
    return EmbeddedQueue(engine, settings.effective_database_url)


def make_consumer(settings: Settings, engine: Engine, consumer: str) -> QueueConsumer:
    """The scheduler's consumer for these settings."""
    if settings.uses_redis:
        return RedisConsumer(settings.redis_url, settings.ray_namespace, consumer)
    return EmbeddedConsumer(engine, settings.effective_database_url)


def describe(settings: Settings) -> str:
    """One line for banners: where the queue lives."""
    if settings.uses_redis:
        return f"Redis stream {stream_key(settings.ray_namespace)} at {redact_url(settings.redis_url)}"
    return "embedded (queue_entries table in the database)"
