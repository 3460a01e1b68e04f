"""Fixtures of the two-host tests: test hosts (network namespaces with sshd) and the services they reach.

They need root, iproute2, openssh-server, rsync and socat (`make test` installs them as root); a
missing one skips the tests locally and fails them in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.cluster import hosts as test_hosts
from tests.cluster.ray_up import Forward, wait_listening
from tests.conftest import IN_CI, empty_pg_database
from tests.helpers import free_port


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[test_hosts.Hosts]:
    """Two hosts, ``head`` and ``w1``, on a bridge; removed afterwards whatever happened."""
    why = test_hosts.missing_tools()
    if why:
        (pytest.fail if IN_CI else pytest.skip)(why)
    made = test_hosts.make_hosts(tmp_path_factory.mktemp("hosts"), ["head", "w1"])
    try:
        yield made
    finally:
        left = made.close()
        if left:
            print(f"killed at clean-up: {left}", file=sys.stderr)


@pytest.fixture(scope="module")
def forwarded(hosts: test_hosts.Hosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A PostgreSQL database of its own and Redis, reachable from the hosts at the bridge's address
    (socat in this namespace: PostgreSQL and Redis keep listening on 127.0.0.1 only, unchanged).

    ``database`` is its URL from this namespace, ``database_from_hosts`` and ``redis_from_hosts``
    are the addresses the hosts use."""
    logs = Path(tmp_path_factory.mktemp("forwards"))
    with empty_pg_database("conductor_cluster") as url:
        forwards = [Forward(hosts.gateway, free_port(), 5432, logs / "postgres.log"),
                    Forward(hosts.gateway, free_port(), 6379, logs / "redis.log")]
        try:
            for forward in forwards:
                wait_listening(forward.address)
            name = url.rsplit("/", 1)[1]
            yield {"database": url, "database_from_hosts": f"postgresql+psycopg2://postgres@{forwards[0].address}/{name}",
                   "redis_from_hosts": f"redis://{forwards[1].address}/9"}
        finally:
            for forward in forwards:
                forward.close()
