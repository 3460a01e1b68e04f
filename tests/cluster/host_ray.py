"""`ray` as a test host runs it: Ray's own CLI, except that `ray stop` sees only this host's processes.

`ray stop` stops every Ray process it finds in the process table.  The test hosts are network
namespaces that share this machine's process table (with other people's Ray in it), so here it is
given only the processes of the caller's network namespace: exactly what `ray stop` on a real host
would see.  Everything else is Ray's CLI unchanged.
"""

from __future__ import annotations

import os
import sys

import psutil


def _this_host_only() -> None:
    own = os.stat("/proc/self/ns/net").st_ino
    every = psutil.process_iter

    def process_iter(*args, **kwargs):
        for process in every(*args, **kwargs):
            try:
                if os.stat(f"/proc/{process.pid}/ns/net").st_ino == own:
                    yield process
            except OSError:  # gone meanwhile
                continue

    psutil.process_iter = process_iter


if __name__ == "__main__":
    if sys.argv[1:2] == ["stop"]:
        _this_host_only()
    from ray.scripts.scripts import main

    sys.argv[0] = "ray"
    sys.exit(main())
