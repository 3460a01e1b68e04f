"""A lane: one Ray task that runs several jobs of one shape in turn, as its keeper hands them over.

A burst of short jobs costs Ray a task each (a lease, a push, a worker's turn, task events) and
the job itself a few milliseconds.  A lane runs its first job, then tells its keeper how that job
ended and asks for the next attempt of the same shape that waits there; the keeper answers with
one, or with none, and the lane ends.  Ray holds the lane's resources (exactly one job's) for as
long as it runs, and the lane runs one job at a time, so Ray's accounting still matches the
allocation rows of the job it runs (invariant 3).

The keeper's end of the conversation is a Unix stream socket in the abstract namespace, named
after the keeper's incarnation; both ends check that the other runs as the same user (a job that
runs as someone else cannot speak for a lane).  Each ask is one connection: a length-prefixed
pickle of ``Ask``, answered by one of ``RunRequest`` or None.  A lane also says when it has
started (an ``Ask`` without a report): the keeper's launch pacing counts from then.  When the keeper cannot be reached,
the lane returns its last job's token and report as the Ray task's result, which the keeper reads
as any task's end.

Standard library only (see conductor.executor).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import struct
from dataclasses import dataclass

from conductor.executor.report import RunReport, RunRequest
from conductor.executor.run import run_job

PREFIX = "conductor-keeper-lanes-"
_LENGTH = struct.Struct("!I")
#: How long a lane waits for its keeper's answer (the keeper answers at once, or after a short linger).
ASK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Ask:
    """A lane's message: how its current attempt ended, and a request for the next one."""

    lane_id: str
    secret: str  #: given to the lane with its first job (in the Ray task's arguments), so only it speaks for it
    token: str  #: the attempt that ended (or, with no report, that the lane has just started)
    report: RunReport | None


def address(incarnation: str) -> str:
    """The abstract socket name a keeper serves its lanes on (host-wide; the incarnation makes it unique)."""
    return "\0" + PREFIX + incarnation


def peer_uid(connection: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def frame_length(header: bytes) -> int:
    return _LENGTH.unpack(header)[0]


def run_lane(keeper_address: str, lane_id: str, secret: str,
             request: RunRequest) -> tuple[str, RunReport] | None:
    """Run ``request``, then each next attempt the keeper hands over, until it has none.

    Returns None when the keeper has taken the last report over the socket, or (token, report)
    of the last attempt when it could not be told.
    """
    with contextlib.suppress(OSError, EOFError, pickle.UnpicklingError, struct.error):
        _ask(keeper_address, Ask(lane_id, secret, request.control, None))  # "started": paces the next
    while True:
        report = run_job(request)
        try:
            following = _ask(keeper_address, Ask(lane_id, secret, request.control, report))
        except (OSError, EOFError, pickle.UnpicklingError, struct.error):
            return request.control, report
        if following is None:
            return None
        request = following


def _ask(keeper_address: str, ask: Ask) -> RunRequest | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(ASK_TIMEOUT_S)
        connection.connect(keeper_address)
        if peer_uid(connection) != os.getuid():
            raise ConnectionRefusedError(f"the lane socket {keeper_address[1:]!r} is not the keeper's")
        connection.sendall(frame(ask))
        header = _receive(connection, _LENGTH.size)
        answer = pickle.loads(_receive(connection, frame_length(header)))
    if answer is not None and not isinstance(answer, RunRequest):
        raise pickle.UnpicklingError(f"the keeper answered a {type(answer).__name__}")
    return answer


def _receive(connection: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = connection.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the keeper closed the lane socket")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
