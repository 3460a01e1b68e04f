"""``GET /api/jobs/{job_id}/output/follow``: a job's output as Server-Sent Events, like ``tail -f``.

How it follows the file: every ``poll_s`` (0.25 s) the route looks at the output file's size and
reads what was appended since the last event; the job's state is read from the database at most
every ``job_poll_s`` (0.5 s).  Both, and the keepalive, are ``FollowTiming``, given to
``create_app`` (the app keeps it in ``app.state.follow``).  Polling the size is cheap (one open
and ``fstat`` per follower and tick)
and works on the shared file systems (NFS) that jobs of other nodes write to, where inotify
sees nothing; a follower sees new output within about a quarter of a second.

The wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html):

* output: ``id: <byte offset after the chunk>`` and ``data: <the chunk as a JSON string>``.
  The chunk is JSON-encoded so that every byte of the text survives (SSE itself would turn
  a bare ``\\r``, as progress bars write it, into a line break); it never ends inside a
  UTF-8 character.  A client resumes with ``Last-Event-ID: <id>`` (or ``?offset=<id>``).
* ``event: truncated``: the file is shorter than the offset (the job was requeued and its
  output started again); the events that follow start from offset 0 (``id: 0``).
* ``: keepalive``, a comment, after ``keepalive_s`` (15 s) without an event.
* ``event: end``, last: ``data: {"state": "COMPLETED", "exit_code": "0:0"}`` once the job is
  in a final state and the file has been sent to its end; then the response ends.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Annotated, AsyncIterator

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, JobRefDep, ServiceDep, visible_ref
from api.schemas import ErrorResponse
from conductor import jobs, output
from conductor.exceptions import JobNotFound
from conductor.service import JobService

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/jobs", tags=["jobs"])



@dataclass(frozen=True)
class FollowTiming:
    """How a follower watches a job: its file, its state, and the silence before a keepalive."""

    poll_s: float = 0.25  #: seconds between two looks at the output file's size
    job_poll_s: float = 0.5  #: the job's state is read from the database at most this often
    keepalive_s: float = 15.0  #: a ``: keepalive`` comment goes out after this long without an event


class Followers:
    """How many output streams are being followed now (each ends when its client goes)."""

    def __init__(self) -> None:
        self.active = 0


#: Most bytes of output in one event.
CHUNK_BYTES = 64 * 1024
MAX_OFFSET = 2**62

_ERRORS = {401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
           503: {"model": ErrorResponse}}
_EXAMPLE = ('id: 18\ndata: "epoch 1 loss 0.31\\n"\n\n'
            ': keepalive\n\n'
            'id: 36\ndata: "epoch 2 loss 0.22\\n"\n\n'
            'event: end\nid: 36\ndata: {"state": "COMPLETED", "exit_code": "0:0"}\n\n')


class FollowQuery(BaseModel):
    """``GET /api/jobs/{job_id}/output/follow`` query."""

    model_config = ConfigDict(extra="forbid")

    stream: str = Field("stdout", description="stdout or stderr; stderr is the stdout file when the job "
                                              "has no -e.", examples=["stderr"])
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="First byte to send (a Last-Event-ID header, "
                                                            "when given, takes its place).", examples=[0])

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        if value not in output.STREAMS:
            raise ValueError(f"{value!r} is not a stream; use stdout or stderr")
        return value


@router.get(
    "/{job_id}/output/follow", summary="Follow a job's stdout or stderr (Server-Sent Events)",
    responses={**_ERRORS, 200: {"description": "An event stream that ends with `event: end`.",
                                "content": {"text/event-stream": {"schema": {"type": "string"},
                                                                  "example": _EXAMPLE}}}})
async def follow_output(
    request: Request,
    job_id: JobRefDep,
    query: Annotated[FollowQuery, Query()], service: ServiceDep, caller: CallerDep,
    last_event_id: Annotated[int | None, Header(
        alias="Last-Event-ID", ge=0, le=MAX_OFFSET, examples=[18],
        description="The id of the last event received: resume after it (replaces offset).")] = None,
) -> StreamingResponse:
    """The output file from ``offset`` on, then what is appended to it while the job is PENDING or
    RUNNING, as Server-Sent Events; the stream ends with ``event: end`` and the job's final state once
    the job has ended and the whole file has been sent.

    Each output event's ``data`` is the text as a JSON string (UTF-8; undecodable bytes replaced) and
    its ``id`` the byte offset after it: reconnect with ``Last-Event-ID`` to go on where it stopped.
    ``event: truncated`` (``id: 0``) says the file was started again (the job was requeued): the text
    follows from its start.  A ``: keepalive`` comment comes after 15 s of silence.  The file is looked
    at every 0.25 s and the job's state every 0.5 s.  As for ``/output``, the file is read on the API's
    host.  Example: ``curl -N /api/jobs/42/output/follow?stream=stderr``."""
    job = await run_in_threadpool(visible_ref, service, caller, job_id)
    offset = query.offset if last_event_id is None else last_event_id
    return StreamingResponse(_events(request, service, job, query.stream, offset), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(request: Request, service: JobService, job: jobs.Job, stream: str,
                  offset: int) -> AsyncIterator[str]:
    """The event stream, counted among the app's followers while it lasts."""
    followers: Followers = request.app.state.followers
    followers.active += 1
    try:
        async for event in _follow(request, service, job, stream, offset, request.app.state.follow):
            yield event
    finally:
        followers.active -= 1


async def _follow(request: Request, service: JobService, job: jobs.Job, stream: str, offset: int,
                  timing: FollowTiming) -> AsyncIterator[str]:
    """The events; ``job`` was read just now, and is read again at most every ``timing.job_poll_s``."""
    job_read_at = last_sent = time.monotonic()
    while not await request.is_disconnected():
        if time.monotonic() - job_read_at >= timing.job_poll_s:
            try:
                job = await run_in_threadpool(service.get, job.id)
            except JobNotFound:  # purged while followed: nothing more will come
                return
            except Exception:  # noqa: BLE001 - a database hiccup: keep the last state, try again
                log.warning("following job %s: cannot read its state", job.id, exc_info=True)
            job_read_at = time.monotonic()
        final = job.state.is_terminal()  # read before the file: if final, the file is complete
        size = 0
        if _has_output(job):
            path = job.stdout_path if stream == "stdout" else job.stderr_path
            owner = output.owner_uid(job)  # a file its user does not own is not the job's output
            size = await run_in_threadpool(output.file_size, path, owner_uid=owner)
            if size < offset:  # the job was requeued and its file started again
                offset = 0
                yield _event(json.dumps({"size": size}), event="truncated", event_id=0)
                last_sent = time.monotonic()
            while size > offset:
                data, start, size = await run_in_threadpool(output.read_range, path, offset=offset,
                                                            limit_bytes=CHUNK_BYTES, owner_uid=owner)
                if start < offset:  # shrank since the stat: the next tick says truncated
                    break
                if not (final and start + len(data) >= size):
                    data = data[:len(data) - output.incomplete_trailing_char(data)]  # the rest comes later
                if not data:
                    break
                offset += len(data)
                yield _event(json.dumps(data.decode("utf-8", errors="replace"), ensure_ascii=False),
                             event_id=offset)
                last_sent = time.monotonic()
                if await request.is_disconnected():
                    return
        if final and offset == size:  # (offset > size: the file shrank; the next tick starts it again)
            yield _event(json.dumps({"state": job.state.value, "exit_code": job.exit_code_text}),
                         event="end", event_id=offset)
            return
        if time.monotonic() - last_sent >= timing.keepalive_s:
            yield ": keepalive\n\n"
            last_sent = time.monotonic()
        await anyio.sleep(timing.poll_s)


def _has_output(job: jobs.Job) -> bool:
    """Whether the job's path holds its output (as JobService.read_output: not before its first start)."""
    return not (job.state is jobs.JobState.PENDING and job.restart_count == 0)


def _event(data: str, *, event: str | None = None, event_id: int | None = None) -> str:
    """One event; ``data`` is a single line (JSON)."""
    head = (f"event: {event}\n" if event else "") + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {data}\n\n"
