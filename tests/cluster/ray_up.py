"""What `ray up` needs around the test hosts: a copy of ray-cluster.yaml, the hosts' homes, port forwards.

The cluster yaml is the repository's own, with only what a site edits changed: the addresses, the
account and key, the cluster's name, setup_commands (the hosts share this machine's file system,
so conductor is already installed: ``~/conductor-venv`` on each host is this checkout's .venv,
with `ray stop` limited to the host, see host_ray.py), and the autoscaler's worker counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.cluster.hosts import REPO, Host, Hosts

CLUSTER_YAML = REPO / "ray-cluster.yaml"
VENV_BIN = Path(sys.executable).parent


def prepare_home(host: Host, partition: str) -> None:
    """The host's ~/conductor-venv (this checkout's venv), PATH, and ~/conductor-partition."""
    venv_bin = host.home / "conductor-venv" / "bin"
    venv_bin.mkdir(parents=True)
    for tool in ("conductor", "python", "python3"):
        (venv_bin / tool).symlink_to(VENV_BIN / tool)
    ray = venv_bin / "ray"
    ray.write_text(f"#!/bin/sh\nexec {VENV_BIN / 'python'} {REPO / 'tests' / 'cluster' / 'host_ray.py'} \"$@\"\n")
    ray.chmod(0o755)
    # `ray down` runs a bare `ray stop` in a login shell: the venv is on the host's PATH.
    (host.home / ".bash_profile").write_text('export PATH="$HOME/conductor-venv/bin:$PATH"\n'
                                             '[ -f ~/.bashrc ] && . ~/.bashrc\n')
    (host.home / "conductor-partition").write_text(f"{partition}\n")
    (host.home / "conductor").mkdir()


def write_cluster_yaml(hosts: Hosts, path: Path, *, min_workers: int, idle_timeout_minutes: float) -> str:
    """The repository's ray-cluster.yaml for these hosts (the first is the head); returns the cluster name."""
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    name = f"conductor-test-{hosts.tag}"
    head, *workers = hosts.hosts
    config["cluster_name"] = name
    config["provider"].update(head_ip=head.address, worker_ips=[w.address for w in workers])
    config["auth"] = {"ssh_user": "root", "ssh_private_key": str(hosts.key)}
    config["setup_commands"] = ["test -x ~/conductor-venv/bin/conductor"]
    config.update(min_workers=min_workers, max_workers=len(workers), idle_timeout_minutes=idle_timeout_minutes)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return name


def client_env(hosts: Hosts) -> dict[str, str]:
    """The environment `ray up`/`ray down` run in here: a home of their own (the token, ssh's files), and
    a temporary directory of their own (the local provider's node list, ``cluster-<name>.state``),
    and autoscaler v1 on the head (see docs/CLUSTER.md: Ray 2.60's v2 does not scale the local provider)."""
    home = hosts.root / "client"
    return {**os.environ, "HOME": str(home), "RAY_TMPDIR": str(home / "tmp"), "RAY_AUTH_MODE": "token",
            "RAY_UP_enable_autoscaler_v2": "0"}


def ray_cli(hosts: Hosts, *args: str, timeout_s: float) -> subprocess.CompletedProcess:
    env = client_env(hosts)
    Path(env["RAY_TMPDIR"]).mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(VENV_BIN / "ray"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout_s, cwd=hosts.root)


class Forward:
    """socat in the root namespace: ``listen_host:port`` -> ``127.0.0.1:target_port``; stopped by its pid."""

    def __init__(self, listen_host: str, port: int, target_port: int, log: Path) -> None:
        self.address = f"{listen_host}:{port}"
        self.process = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{port},bind={listen_host},fork,reuseaddr", f"TCP:127.0.0.1:{target_port}"],
            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def close(self) -> None:
        """Stop socat and the children it forked for open connections (its own process group)."""
        try:
            os.killpg(self.process.pid, 15)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=5)


def wait_listening(address: str, timeout_s: float = 10) -> None:
    import socket

    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
