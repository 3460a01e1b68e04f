"""Reading a job's output files: a byte range, or the last bytes, of a regular file.

The API reads the files where it runs.  A job writes its stdout/stderr on the node it ran
on, so this sees them only for jobs of the API's own node (the single-node default) or
when the output directory is shared (NFS and the like) between the nodes and the API host.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from conductor import jobs

DEFAULT_LIMIT_BYTES = 1024 * 1024
MAX_LIMIT_BYTES = 16 * 1024 * 1024
STREAMS = ("stdout", "stderr")
_UTF8_CONTINUATION_MASK, _UTF8_CONTINUATION = 0xC0, 0x80


@dataclass(frozen=True)
class OutputChunk:
    """Bytes of one output file: ``data`` starts at ``offset``; the file had ``size_bytes``.

    ``job`` was read before the file, so once it is in a terminal state the file was
    complete when read: a follower stops when that holds and ``next_offset == size_bytes``.
    """

    job: jobs.Job
    data: bytes
    offset: int
    size_bytes: int

    @property
    def next_offset(self) -> int:
        """Where the next read should start."""
        return self.offset + len(self.data)


def read_range(path: str, *, offset: int = 0, limit_bytes: int = DEFAULT_LIMIT_BYTES,
               tail_bytes: int | None = None) -> tuple[bytes, int, int]:
    """(data, start offset, file size) of ``path``; a missing or non-regular file reads as empty.

    With ``tail_bytes`` the last that many bytes are read (``offset`` and ``limit_bytes`` are
    ignored); an ``offset`` past the end (the file was truncated) reads nothing, from the end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)  # a FIFO must not block the API
    except OSError:  # missing, unreadable, a socket (ENXIO), a loop of links: no output to show
        return b"", 0, 0
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # /dev/null, a FIFO, a device: nothing to show
            return b"", 0, 0
        size = info.st_size
        if tail_bytes is not None:
            start, length = max(0, size - tail_bytes), tail_bytes
        else:
            start, length = min(offset, size), limit_bytes
        handle.seek(start)
        data = handle.read(length)
    return data, start, max(size, start + len(data))  # the file may have grown since fstat


def skip_partial_leading_char(data: bytes) -> int:
    """How many leading bytes are UTF-8 continuation bytes (a tail cut a character in two)."""
    count = 0
    while count < min(3, len(data)) and data[count] & _UTF8_CONTINUATION_MASK == _UTF8_CONTINUATION:
        count += 1
    return count


def incomplete_trailing_char(data: bytes) -> int:
    """How many trailing bytes start a UTF-8 character that is not complete yet (0 to 3).

    A follower keeps them for its next read, so a character written in two pieces is not
    shown as two replacement characters.
    """
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & _UTF8_CONTINUATION_MASK == _UTF8_CONTINUATION:
            continue
        needed = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4 if byte >> 3 == 0b11110 else 1
        return back if needed > back else 0
    return 0
