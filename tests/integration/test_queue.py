"""The queue, on a real Redis stream and on the embedded table: the same behaviour from outside."""

from __future__ import annotations

import asyncio

import pytest

from conductor import queue
from conductor.config import Settings
from conductor.db.session import make_engine, migrate
from conductor.exceptions import QueueUnavailable


def _pair(settings: Settings, consumer: str = "c1") -> tuple[queue.JobQueue, queue.QueueConsumer]:
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    return queue.make_queue(settings, engine), queue.make_consumer(settings, engine, consumer)


async def _ids(consumer: queue.QueueConsumer, block_s: float = 0.2) -> list[int]:
    return [entry.job_id for entry in await consumer.read(100, block_s)]


def test_pushed_ids_arrive_in_order_and_acked_entries_are_gone(settings: Settings) -> None:
    async def scenario() -> None:
        producer, consumer = _pair(settings)
        producer.push([3, 1, 2])
        entries = await consumer.read(100, 0.2)
        assert [e.job_id for e in entries] == [3, 1, 2]
        await consumer.ack([e.entry_id for e in entries])
        assert await _ids(consumer) == []
        await consumer.close()
        _, fresh = _pair(settings)
        assert await _ids(fresh) == []  # nothing acknowledged comes back
        await fresh.close()

    asyncio.run(scenario())


def test_unacknowledged_entries_are_redelivered_to_the_next_consumer(settings: Settings) -> None:
    async def scenario() -> None:
        producer, first = _pair(settings, "c1")
        producer.push([7, 8])
        entries = await first.read(100, 0.2)
        await first.ack([entries[0].entry_id])
        await first.close()  # the consumer "dies" holding job 8
        _, second = _pair(settings, "c2")
        assert await _ids(second) == [8]
        assert await _ids(second) == []  # delivered once to this consumer
        await second.close()

    asyncio.run(scenario())


def test_a_blocking_read_wakes_on_push(settings: Settings) -> None:
    async def scenario() -> None:
        producer, consumer = _pair(settings)
        loop = asyncio.get_running_loop()
        await _ids(consumer, 0.01)  # first read: create the group / recover
        started = loop.time()
        reader = asyncio.create_task(consumer.read(10, 5.0))
        await asyncio.sleep(0.2)
        await loop.run_in_executor(None, producer.push, [42])
        entries = await reader
        assert [e.job_id for e in entries] == [42]
        assert loop.time() - started < 2.0, "the read should wake on the push, not at its 5 s timeout"
        await consumer.close()

    asyncio.run(scenario())


def test_same_job_id_pushed_twice_is_delivered_twice(settings: Settings) -> None:
    """At-least-once: duplicates reach the scheduler, which must run the job once."""
    async def scenario() -> None:
        producer, consumer = _pair(settings)
        producer.push([5])
        producer.push([5])
        assert await _ids(consumer) == [5, 5]
        await consumer.close()

    asyncio.run(scenario())


def test_unreachable_redis_raises_queue_unavailable(settings_factory) -> None:
    settings = settings_factory("sqlite-embedded", redis_url="redis://127.0.0.1:1/0")
    producer = queue.make_queue(settings, make_engine(settings.effective_database_url))
    with pytest.raises(QueueUnavailable):
        producer.push([1])


def test_a_malformed_redis_entry_is_dropped_not_retried_forever(settings_factory) -> None:
    import redis as redis_client

    settings = settings_factory("postgres-redis")

    async def scenario() -> None:
        producer, consumer = _pair(settings)
        await _ids(consumer, 0.01)  # creates the group
        raw = redis_client.Redis.from_url(settings.redis_url)
        raw.xadd(queue.stream_key(settings.ray_namespace), {"something": "else"})
        producer.push([9])
        assert await _ids(consumer) == [9]
        consumer.rewind()  # even when every unacknowledged entry is delivered again
        assert await _ids(consumer) == [9]
        assert raw.xlen(queue.stream_key(settings.ray_namespace)) == 1  # only job 9's entry is left
        await consumer.close()

    asyncio.run(scenario())
