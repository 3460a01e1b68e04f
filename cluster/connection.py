"""Connecting to Ray: attach to RAY_ADDRESS, or to the local Ray a previous conductor started, or start one.

A Ray started here declares the node's CPUs and memory from TOTAL_CPUS and
TOTAL_MEMORY (Ray would otherwise see the host's cores and ~70 % of its RAM), names
the node NODE_NAME, and writes its address to ``<STATE_DIR>/ray-address`` so that a
second ``conductor worker`` attaches to it instead of starting another.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import ray

from conductor.config import Settings

log = logging.getLogger(__name__)

#: Ray's object store holds no job data here; keep it small so several clusters fit one host.
OBJECT_STORE_BYTES = 256 * 1024 * 1024
_MIB = 1024 * 1024


@dataclass(frozen=True)
class RayConnection:
    """What ``connect`` did."""

    address: str
    started_here: bool
    dashboard_url: str
    node_id: str


def address_file(settings: Settings) -> Path:
    return settings.state_dir / "ray-address"


def connect(settings: Settings) -> RayConnection:
    """Attach to or start Ray for this process (idempotent)."""
    if ray.is_initialized():
        return _describe(started_here=False)
    address = settings.ray_address
    if not address:
        address = _previous_local_address(settings)
        if address:
            _use_local_token()
    if address:
        context = ray.init(address=address, namespace=settings.ray_namespace, log_to_driver=False,
                           logging_level=logging.WARNING)
        return _describe(started_here=False, dashboard=context.dashboard_url)
    context = ray.init(
        # "local": start one even when another Ray runs on this host (Ray would otherwise attach
        # to the one `ray start` last recorded in /tmp/ray/ray_current_cluster, and refuse num_cpus).
        address="local",
        num_cpus=settings.total_cpus,
        object_store_memory=OBJECT_STORE_BYTES,
        include_dashboard=True,
        dashboard_host=settings.ray_dashboard_host,
        dashboard_port=settings.ray_dashboard_port,
        namespace=settings.ray_namespace,
        log_to_driver=False,
        logging_level=logging.WARNING,
        _memory=settings.total_memory_mb * _MIB if settings.total_memory_mb else None,
        _node_name=settings.node_name,
    )
    connection = _describe(started_here=True, dashboard=context.dashboard_url)
    path = address_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(connection.address + "\n", encoding="utf-8")
    return connection


def disconnect(settings: Settings, connection: RayConnection) -> None:
    """Leave Ray; a Ray started here stops with it, so forget its address."""
    if connection.started_here:
        address_file(settings).unlink(missing_ok=True)
    ray.shutdown()


def _previous_local_address(settings: Settings) -> str:
    """The address a running local conductor's Ray wrote, if that Ray still answers."""
    path = address_file(settings)
    if not path.is_file():
        return ""
    address = path.read_text(encoding="utf-8").strip()
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return address
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return ""


def _use_local_token() -> None:
    """Send the local token to our own local Ray.

    ray.init() starts a local Ray with token auth on (Ray >= 2.59), but a client given an
    explicit address sends the token only when RAY_AUTH_MODE says so, and Ray caches that
    setting; this is what Ray itself does for ``ray.init(address="auto")``.
    """
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _describe(*, started_here: bool, dashboard: str | None = None) -> RayConnection:
    context = ray.get_runtime_context()
    url = dashboard or ""
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return RayConnection(address=context.gcs_address, started_here=started_here, dashboard_url=url,
                         node_id=context.get_node_id())
