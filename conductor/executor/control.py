"""The control channel of one running attempt: how its keeper stops or signals it.

The executor binds an abstract Unix datagram socket named after the attempt's token for as
long as it supervises the job; the keeper on the same node sends it ``stop`` or ``signal N``.
This owes nothing to Ray's cancel (a KeyboardInterrupt raised from SIGINT), so it works
whatever signal dispositions the service was started with (``nohup``, ``setsid ... &``,
systemd), and it reaches the job's whole process group through the executor.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass

PREFIX = "conductor-attempt-"
STOP = "stop"
SIGNAL = "signal"


@dataclass(frozen=True)
class Command:
    """One message: ``stop``, or ``signal`` with its number."""

    verb: str
    signum: int = 0


def address(token: str) -> str:
    """The abstract socket name of an attempt (host-wide; the token makes it unique)."""
    return "\0" + PREFIX + token


def listen(token: str) -> socket.socket:
    """The attempt's end of the channel, bound and non-blocking."""
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    channel.setblocking(False)
    try:
        channel.bind(address(token))
    except OSError:
        channel.close()
        raise
    return channel


def receive(channel: socket.socket) -> list[Command]:
    """Every command waiting on ``channel`` (malformed ones are dropped)."""
    commands = []
    with contextlib.suppress(BlockingIOError):
        while True:
            verb, _, arg = channel.recv(64).decode("ascii", errors="replace").partition(" ")
            if verb == STOP:
                commands.append(Command(STOP))
            elif verb == SIGNAL and arg.isdigit():
                commands.append(Command(SIGNAL, int(arg)))
    return commands


def send(token: str, command: Command) -> bool:
    """Deliver ``command`` to the attempt; False when nothing listens (not started yet, or over)."""
    text = command.verb if command.verb == STOP else f"{SIGNAL} {command.signum}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        try:
            sender.sendto(text.encode("ascii"), address(token))
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return False
            raise
    return True
