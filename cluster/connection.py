"""Connecting to Ray: attach to RAY_ADDRESS, or to the local Ray conductor started before, or start one.

Without RAY_ADDRESS, conductor runs its own single-node Ray as a daemon of its own (``ray start
--head --block`` in a session of its own, like slurmd beside slurmctld): running jobs belong to
the keepers in that Ray, so they outlive a stopped ``conductor up`` when SHUTDOWN_RUNNING_JOBS is
``keep``, and the next ``conductor up`` attaches to it and adopts them.  That Ray declares the
node's CPUs and memory from TOTAL_CPUS and TOTAL_MEMORY (Ray would otherwise see the host's cores
and ~70 % of its RAM), names the node NODE_NAME, takes ports of its own, and is recorded in
``<STATE_DIR>/ray-address`` and ``<STATE_DIR>/ray.pid``; it is stopped by that pid, never by name
(``ray stop`` would stop every Ray on the host).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ray

from conductor.config import Settings
from conductor.exceptions import ConductorError

log = logging.getLogger(__name__)

#: Ray's object store holds no job data here; keep it small so several clusters fit one host.
OBJECT_STORE_BYTES = 256 * 1024 * 1024
#: How long a local Ray may take to start, and to stop once asked.
START_TIMEOUT_S, STOP_TIMEOUT_S = 90.0, 30.0
LOCAL_IP = "127.0.0.1"
_MIB = 1024 * 1024


@dataclass(frozen=True)
class RayConnection:
    """What ``connect`` did: the address, whether this process started that Ray, and whether it is
    conductor's own local Ray (recorded in the state directory; None: an outside Ray)."""

    address: str
    started_here: bool
    dashboard_url: str
    node_id: str
    local_pid: int | None = None


def address_file(settings: Settings) -> Path:
    return settings.state_dir / "ray-address"


def pid_file(settings: Settings) -> Path:
    return settings.state_dir / "ray.pid"


def connect(settings: Settings) -> RayConnection:
    """Attach to or start Ray for this process (idempotent)."""
    if ray.is_initialized():
        return _describe(started_here=False)
    started_here = False
    address, local_pid = settings.ray_address, None
    if not address:
        address, local_pid = _previous_local_ray(settings)
        if not address:
            address, local_pid = start_local_ray(settings)
            started_here = True
        _use_local_token()
    context = ray.init(address=address, namespace=settings.ray_namespace, log_to_driver=False,
                       logging_level=logging.WARNING)
    dashboard = context.dashboard_url
    if not dashboard and local_pid is not None:  # it registers its address a moment after Ray starts
        dashboard = f"{settings.ray_dashboard_host}:{settings.ray_dashboard_port}"
    return _describe(started_here=started_here, dashboard=dashboard, local_pid=local_pid)


def disconnect(settings: Settings, connection: RayConnection, *, stop_local: bool) -> None:
    """Leave Ray; with ``stop_local``, also stop conductor's own local Ray (and everything in it)."""
    ray.shutdown()
    if stop_local and connection.local_pid is not None:
        stop_local_ray(settings)


def start_local_ray(settings: Settings) -> tuple[str, int]:
    """Start conductor's local Ray as a daemon of its own; (its GCS address, the pid to stop it by)."""
    port = _free_port()
    # Ports of its own for what `ray start` would put on fixed defaults (10001, 52365...), so several
    # conductors (or another Ray) can share a host.
    own_ports = [f"--{option}={_free_port()}" for option in (
        "ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "runtime-env-agent-port", "metrics-export-port")]
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}", *own_ports,
               f"--node-name={settings.node_name}",
               f"--object-store-memory={OBJECT_STORE_BYTES}", "--include-dashboard=true",
               f"--dashboard-host={settings.ray_dashboard_host}", f"--dashboard-port={settings.ray_dashboard_port}",
               "--disable-usage-stats", "--block"]
    if settings.total_cpus:
        command.append(f"--num-cpus={settings.total_cpus}")
    if settings.total_memory_mb:
        command.append(f"--memory={settings.total_memory_mb * _MIB}")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "1"}
    _ensure_local_token()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "ray.log", "ab") as log_file:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True, cwd=settings.state_dir)
    address = f"{LOCAL_IP}:{port}"
    pid_file(settings).write_text(f"{process.pid}\n", encoding="utf-8")
    address_file(settings).write_text(address + "\n", encoding="utf-8")
    _wait_until_up(settings, process, port)
    return address, process.pid


def stop_local_ray(settings: Settings) -> bool:
    """Stop conductor's local Ray by its recorded pid (its job processes with it); True if one ran."""
    pid = _recorded_pid(settings)
    address_file(settings).unlink(missing_ok=True)
    pid_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # ray start --block then stops the processes it started
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        log.warning("the local Ray (pid %d) did not stop in %.0f s: killing its session", pid, STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return True


def local_ray_running(settings: Settings) -> bool:
    """Whether conductor's local Ray of this state directory is up."""
    return bool(_previous_local_ray(settings)[0])


def _previous_local_ray(settings: Settings) -> tuple[str, int | None]:
    """The address and pid of the local Ray an earlier conductor started, if it still answers."""
    path = address_file(settings)
    if not path.is_file():
        return "", None
    address = path.read_text(encoding="utf-8").strip()
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return address, _recorded_pid(settings)
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return "", None


def _wait_until_up(settings: Settings, process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection((LOCAL_IP, port), timeout=1):
            return
        time.sleep(0.2)
    tail = (settings.state_dir / "ray.log").read_text(encoding="utf-8", errors="replace")[-1500:]
    stop_local_ray(settings)
    raise ConductorError(f"the local Ray did not start (see {settings.state_dir / 'ray.log'}): {tail.strip()}")


def _recorded_pid(settings: Settings) -> int | None:
    try:
        pid = int(pid_file(settings).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    return _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCAL_IP, 0))
        return probe.getsockname()[1]


def _ensure_local_token() -> None:
    """A token in ~/.ray/auth_token for the local Ray (``ray start`` refuses token auth without one)."""
    from ray._private.authentication.authentication_token_setup import (
        _get_default_token_path,
        generate_and_save_token,
    )

    if not _get_default_token_path().exists():
        generate_and_save_token()


def _use_local_token() -> None:
    """Send the local token to our own local Ray.

    A local Ray runs with token auth on (RAY_AUTH_MODE=token), but a client given an explicit
    address sends the token only when RAY_AUTH_MODE says so, and Ray caches that setting; this is
    what Ray itself does for ``ray.init(address="auto")``.
    """
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _describe(*, started_here: bool, dashboard: str | None = None, local_pid: int | None = None) -> RayConnection:
    context = ray.get_runtime_context()
    url = dashboard or ""
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return RayConnection(address=context.gcs_address, started_here=started_here, dashboard_url=url,
                         node_id=context.get_node_id(), local_pid=local_pid)
