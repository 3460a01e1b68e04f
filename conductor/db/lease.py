"""SchedulerLease: at most one scheduler works on a database at a time.

A second scheduler would take the first one's RUNNING jobs for orphans and requeue them.
PostgreSQL: a session advisory lock held on a dedicated connection (released by the server
when that connection ends, so a crashed scheduler frees it).  SQLite: an exclusive flock on
a file beside the database (SQLite serves one host, and so does the lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from conductor.db.errors import translate_errors
from conductor.exceptions import SchedulerBusy

#: The advisory lock key: "cond" in ASCII.
ADVISORY_LOCK_KEY = 0x636F6E64


class SchedulerLease:
    """Held from ``acquire`` until ``release`` (or the process's end)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._held: Any = None

    def acquire(self) -> None:
        """Take the lease or raise SchedulerBusy."""
        if self._held is not None:
            return
        url = self._engine.url
        if url.get_backend_name() == "postgresql":
            self._held = self._advisory_lock()
        else:
            self._held = self._file_lock(url.database or "")

    def _advisory_lock(self) -> Any:
        with translate_errors():
            connection = self._engine.connect()
            got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}).scalar()
            if got:  # who holds it, for `conductor status` (pg_stat_activity shows it beside the lock)
                connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": _me()})
            connection.commit()
        if not got:
            connection.close()
            raise SchedulerBusy(f"another conductor scheduler is working on {_safe(self._engine)}")
        return connection

    def _file_lock(self, database: str) -> Any:
        path = f"{database}.scheduler-lock" if database and database != ":memory:" else None
        if path is None:
            return True
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SchedulerBusy(f"another conductor scheduler is working on {database}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{_me()}\n")
        handle.flush()
        return handle

    def verify(self) -> None:
        """Check the lease is still held; take it again if the server dropped its connection.

        PostgreSQL ends the advisory lock with the connection that held it (a restart, or
        pg_terminate_backend).  Called every few seconds by the scheduler: a dropped lock is
        re-taken at once; if another scheduler took it meanwhile, this raises SchedulerBusy and
        the caller must stop working on the database.  Database errors propagate (the lock may
        be fine; the caller retries).
        """
        held = self._held
        if not isinstance(held, Connection):
            return  # a flock lasts as long as this process, and so does the SQLite file's host
        try:
            alive = held.execute(text("SELECT 1")).scalar() == 1
            held.commit()
        except Exception:  # the connection is gone, and its lock with it
            alive = False
        if alive:
            return
        with contextlib.suppress(Exception):
            held.invalidate()
        self._held = None
        self.acquire()  # SchedulerBusy if another scheduler has it now

    def release(self) -> None:
        held, self._held = self._held, None
        if held is None or held is True:
            return
        if isinstance(held, Connection):
            # Closing would only return the connection to the pool, still holding the lock.
            with contextlib.suppress(Exception):
                held.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            held.invalidate()
        held.close()


def _safe(engine: Engine) -> str:
    return make_url(str(engine.url)).render_as_string(hide_password=True)


@dataclass(frozen=True)
class Holder:
    """Who holds the lease, as the database (or the lock file) shows it."""

    held: bool | None  #: None: this database cannot tell
    holder: str = ""  #: "conductor-scheduler pid 123 on host"


def _me() -> str:
    return f"conductor-scheduler pid {os.getpid()} on {socket.gethostname()}"


def holder(engine: Engine) -> Holder:
    """Who holds the scheduler lease now, asked without touching the lock (it is never taken to find out)."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        with translate_errors(), engine.connect() as connection:
            row = connection.execute(text(
                "SELECT a.application_name, a.pid, a.client_addr FROM pg_locks l JOIN pg_stat_activity a"
                " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = :key"
                " AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"key": ADVISORY_LOCK_KEY}).first()
        if row is None:
            return Holder(False)
        name, pid, address = row
        return Holder(True, f"{name or 'a session'} (database backend {pid}{f' from {address}' if address else ''})")
    path = f"{url.database}.scheduler-lock" if url.database and url.database != ":memory:" else None
    if path is None or not os.path.exists(path):
        return Holder(False if path else None)
    return _file_holder(path)


def _file_holder(path: str) -> Holder:
    """From /proc/locks (Linux): whether some process holds a flock on the file; its text says who."""
    try:
        status = os.stat(path)
        with open("/proc/locks", encoding="ascii") as locks:
            lines = locks.read().splitlines()
        with open(path, encoding="utf-8") as lock_file:
            written = lock_file.read().strip().splitlines()
    except OSError:
        return Holder(None)
    inode = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    held = any(" FLOCK " in f" {line} " and line.split()[5 if "->" not in line else 6] == inode for line in lines)
    return Holder(held, written[-1] if held and written else "")
