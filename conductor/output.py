"""Reading a job's output files: a byte range, or the last bytes, of a regular file.

The API reads the files where it runs.  A job writes its stdout/stderr on the node it ran
on, so this sees them only for jobs of the API's own node (the single-node default) or
when the output directory is shared (NFS and the like) between the nodes and the API host.

A job that ran as its submitter's Unix account (``run_as``) wrote its files as that user, and
the API, as root, could read whatever that user put at the recorded path: a link to
/etc/shadow, a hard link to someone else's file.  So such a job's file is served only when it
is, itself, a regular file that user owns (``owner_uid``; the last component not a link).
"""

from __future__ import annotations

import os
import pwd
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


#: An owner no file has: the job's account is unknown on this host, so none of its files is served.
NO_OWNER = -1


def owner_uid(job: jobs.Job) -> int | None:
    """The uid the job's output files must belong to, to be served; None: any (not run as a user)."""
    if not job.spec.run_as:
        return None
    try:
        return pwd.getpwnam(job.spec.run_as).pw_uid
    except KeyError:
        return NO_OWNER


def _open_regular(path: str, owner_uid: int | None) -> tuple[int, os.stat_result] | None:
    """(fd, its stat) of the regular file at ``path`` owned by ``owner_uid`` (None: by anyone); else None."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY  # a FIFO must not block the API
    if owner_uid is not None:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError:  # missing, unreadable, a socket (ENXIO), a link (ELOOP): no output to show
        return None
    info = os.fstat(fd)
    # Checked on the open file, not the path, so that nothing can be swapped in between.
    if not stat.S_ISREG(info.st_mode) or (owner_uid is not None and info.st_uid != owner_uid):
        os.close(fd)  # /dev/null, a FIFO, a device, someone else's file: nothing to show
        return None
    return fd, info


def file_size(path: str, *, owner_uid: int | None = None) -> int:
    """Bytes in the output file at ``path`` (as read_range would serve it); 0 when there is none."""
    opened = _open_regular(path, owner_uid)
    if opened is None:
        return 0
    os.close(opened[0])
    return opened[1].st_size


def read_range(path: str, *, offset: int = 0, limit_bytes: int = DEFAULT_LIMIT_BYTES,
               tail_bytes: int | None = None, owner_uid: int | None = None) -> tuple[bytes, int, int]:
    """(data, start offset, file size) of ``path``; a missing or non-regular file reads as empty.

    With ``tail_bytes`` the last that many bytes are read (``offset`` and ``limit_bytes`` are
    ignored); an ``offset`` past the end (the file was truncated) reads nothing, from the end.
    With ``owner_uid``, a file that uid does not own, or a link, reads as empty too.
    """
    opened = _open_regular(path, owner_uid)
    if opened is None:
        return b"", 0, 0
    fd, info = opened
    with os.fdopen(fd, "rb") as handle:
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
