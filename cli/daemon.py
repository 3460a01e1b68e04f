"""``conductor up`` and ``conductor worker``: Ray, the scheduler actor, and (for up) the API server."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any, Callable

import ray
import typer

from cluster import connection
from conductor import logs, queue, units
from conductor.auth import job_identity_mode
from conductor.config import Settings, redact_url
from conductor.exceptions import ConductorError
from conductor.db.session import make_engine, migrate
from conductor.keeper import handle as keeper_handle
from conductor.scheduler import handle as scheduler
from conductor.scheduler.handle import Status

#: How often the foreground process checks that the scheduler actor is alive and started.
SUPERVISE_INTERVAL_S = 2.0
_RULE = "=" * 60


class ManagedScheduler:
    """This process's hold on the cluster's scheduler actor.

    The process whose call started the actor owns it and stops it on exit; a process that
    found it running only watches it, and takes over (creating a new one) if it disappears.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.handle: Any = None
        self.owner = False
        self._stopping: Any = None  # the ObjectRef of the actor's stop(), once begun

    def ensure(self) -> Status:
        """Get or create the actor and make sure it is started; returns its description."""
        try:
            info = self._start()
        except ray.exceptions.RayActorError:  # gone for good (killed by its owner): take over
            self.handle = None
            info = self._start()
        self.owner = self.owner or info.started_now
        return info

    def _start(self) -> Status:
        if self.handle is None:
            self.handle = scheduler.get_or_create(self.settings)
        return scheduler.start(self.handle)

    def begin_stop(self) -> None:
        """Owner: start stopping the actor now, without waiting (safe in a signal handler).

        The actor stops reading the queue and dispatching at once, then ends running jobs as
        SHUTDOWN_RUNNING_JOBS says; it gets there even if this process dies meanwhile, and is
        then unstarted (a later ``start`` boots it again).  ``release`` waits for it.
        """
        if not self.owner or self.handle is None or self._stopping is not None:
            return
        with contextlib.suppress(Exception):  # shutting down anyway; release reports it
            self._stopping = self.handle.stop.remote(*self._stop_args())

    def _stop_args(self) -> tuple[str, float]:
        mode = self.settings.shutdown_running_jobs
        return mode, (self.settings.shutdown_wait_s if mode == "wait" else 0.0)

    def release(self) -> Status | None:
        """Owner: stop the actor (running jobs go on or end as SHUTDOWN_RUNNING_JOBS says) and remove it.

        Returns the actor's last summary (its running count is what is left running under the
        keepers in ``keep`` mode); None when this process does not own the actor."""
        if not self.owner or self.handle is None:
            return None
        self.begin_stop()
        mode, wait_s = self._stop_args()
        typer.echo(f"Stopping the scheduler: no new jobs start; {STOP_MESSAGES[mode].format(wait_s=wait_s)} ...",
                   err=True)
        status = None
        try:
            status = ray.get(self._stopping, timeout=wait_s + self.settings.kill_wait_s + 30)
        except Exception as exc:  # shutting down anyway
            typer.echo(f"scheduler did not stop cleanly: {exc}", err=True)
        finally:
            with contextlib.suppress(Exception):
                ray.kill(self.handle, no_restart=True)
        return status


#: What stopping does with running jobs, per SHUTDOWN_RUNNING_JOBS (the banner says it too).
STOP_MESSAGES = {
    "keep": "running jobs keep running under their keepers (SHUTDOWN_RUNNING_JOBS=keep)",
    "requeue": "running jobs are requeued (SHUTDOWN_RUNNING_JOBS=requeue)",
    "wait": "waiting up to {wait_s:g} s for running jobs, then requeueing the rest (SHUTDOWN_RUNNING_JOBS=wait)",
}


def prepare(settings: Settings) -> tuple[connection.RayConnection, ManagedScheduler, Status]:
    """Migrate the schema, connect to Ray, get-or-create and start the scheduler actor."""
    logs.configure(settings.log_level, settings.log_format)  # this process's lines (the actor sets its own)
    migrate(make_engine(settings.effective_database_url))
    ray_connection = connection.connect(settings)
    managed = ManagedScheduler(settings)
    return ray_connection, managed, managed.ensure()


def banner(settings: Settings, ray_connection: connection.RayConnection, info: Status, role: str) -> str:
    """The start-up banner, like the old worker's."""
    local = info.node(ray_connection.node_id)
    cpus = local.capacity.cpus if local else sum(n.capacity.cpus for n in info.nodes)
    memory = local.capacity.memory_mb if local else sum(n.capacity.memory_mb for n in info.nodes)
    lines = [
        _RULE,
        f"conductor {role}",
        f"Node name:           {local.name if local else settings.node_name}",
        f"Total CPUs:          {cpus}",
        f"Total memory:        {units.format_memory_mb(memory)}",
        f"Worker concurrency:  {info.worker_concurrency}",
        f"Cluster nodes:       {len(info.nodes)}",
        f"Database:            {redact_url(settings.effective_database_url)}",
        f"Queue:               {queue.describe(settings)}",
        f"Ray:                 {ray_connection.address} ({'started here' if ray_connection.started_here else 'attached'})",
        f"Ray dashboard:       {ray_connection.dashboard_url or 'not available'}",
        f"Jobs run as:         {job_identity_mode(settings)}",
        f"On stop:             {STOP_MESSAGES[settings.shutdown_running_jobs].format(wait_s=settings.shutdown_wait_s)}"
        + ("; `conductor down` stops everything" if settings.shutdown_running_jobs == "keep" else ""),
        "-" * 60,
        f"Scheduler actor {scheduler.ACTOR_NAME} {'started' if info.started_now else 'already running; attached'}"
        f" (namespace {settings.ray_namespace}): {info.pending} pending, {info.running} running",
    ]
    if role == "up":
        lines.append(f"REST API:            http://{settings.api_host}:{settings.api_port}  (docs at /docs)")
    lines.append(_RULE)
    return "\n".join(lines)


class Supervisor(threading.Thread):
    """Keeps the scheduler started: after Ray restarts the actor, ``start`` reconciles again.

    When the scheduler cannot be reached for GIVE_UP_AFTER checks in a row (the Ray cluster
    is gone), it records why in ``lost`` and sets ``stop``.
    """

    GIVE_UP_AFTER = 15

    def __init__(self, managed: ManagedScheduler, stop: threading.Event,
                 on_lost: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="conductor-supervisor", daemon=True)
        self._managed, self._stop, self._on_lost = managed, stop, on_lost
        self.lost: str = ""

    def run(self) -> None:
        failures = 0
        while not self._stop.wait(SUPERVISE_INTERVAL_S):
            try:
                self._managed.ensure()
                failures = 0
            except Exception as exc:  # keep supervising for a while; Ray may be restarting the actor
                failures += 1
                logging.getLogger(__name__).warning("scheduler actor not answering: %s", exc)
                if failures >= self.GIVE_UP_AFTER:
                    self.lost = f"lost the scheduler actor ({exc})"
                    self._stop.set()
                    self._on_lost()


def shutdown(settings: Settings, ray_connection: connection.RayConnection, managed: ManagedScheduler) -> None:
    """Stop scheduling if this process owns the scheduler; leave Ray.

    conductor's own local Ray is stopped too, unless jobs keep running in it (``keep`` mode):
    then it stays up for them, and says so."""
    status = managed.release()
    if not managed.owner:  # another process runs the scheduler: its Ray is not ours to stop
        stop_local = False
    elif settings.shutdown_running_jobs == "keep":
        stop_local = status is not None and status.running == 0  # nothing to keep: stop it all
        if not stop_local and ray_connection.local_pid is not None:
            running = status.running if status is not None else "Any"
            typer.echo(f"{running} running job(s) keep running; the local Ray (pid {ray_connection.local_pid}) "
                       "stays up for them. `conductor up` adopts them again; `conductor down` stops everything.",
                       err=True)
    else:
        stop_local = True
    connection.disconnect(settings, ray_connection, stop_local=stop_local)
    _forget_service_pid(settings)


def service_pid_file(settings: Settings):  # noqa: ANN201 - a Path
    """The pid of the `conductor up` / `conductor worker` that owns the scheduler (for `conductor down`)."""
    return settings.state_dir / "conductor.pid"


def _record_service_pid(settings: Settings, managed: ManagedScheduler) -> None:
    if managed.owner:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        service_pid_file(settings).write_text(f"{os.getpid()}\n", encoding="utf-8")


def _forget_service_pid(settings: Settings) -> None:
    path = service_pid_file(settings)
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text(encoding="utf-8")) == os.getpid():
            path.unlink()


def run_worker(settings: Settings) -> None:
    """Run the scheduler until interrupted (or, with WORKER_BURST, until the queue is drained)."""
    ray_connection, managed, info = prepare(settings)
    _record_service_pid(settings, managed)
    typer.echo(banner(settings, ray_connection, info, "worker"))
    stop = _stop_on_signals()
    supervisor = Supervisor(managed, stop)
    supervisor.start()
    try:
        if settings.worker_burst:
            _wait_idle(managed.handle, stop)
            typer.echo("Queue drained and nothing running: exiting (WORKER_BURST=true).")
        else:
            stop.wait()
    finally:
        stop.set()
        shutdown(settings, ray_connection, managed)
    if supervisor.lost:
        raise ConductorError(supervisor.lost)


def _wait_idle(handle: Any, stop: threading.Event) -> None:
    ref = handle.wait_idle.remote()
    while not stop.is_set():
        ready, _ = ray.wait([ref], timeout=0.5)
        if ready:
            ray.get(ref)
            return


def run_up(settings: Settings) -> None:
    """Scheduler plus REST API in one process (the embedded default: SQLite, local Ray)."""
    import uvicorn

    from api.app import create_app

    settings.check_bind_address()  # before anything starts
    ray_connection, managed, info = prepare(settings)
    _record_service_pid(settings, managed)
    typer.echo(banner(settings, ray_connection, info, "up"))
    stop = threading.Event()
    # uvicorn handles SIGINT/SIGTERM itself, then re-raises them to the handlers it found;
    # let those be no-ops (Ray's would exit with status 15) so the shutdown below runs to the end.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    try:
        app = create_app(settings, check_ray=True, dashboard_url=ray_connection.dashboard_url)
        # LOG_FORMAT=json: uvicorn's own lines go through the root logger too (one JSON object per line).
        log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
        server = uvicorn.Server(uvicorn.Config(app, host=settings.api_host, port=settings.api_port,
                                               log_level=settings.log_level.lower(), log_config=log_config))
        server.handle_exit = _stopping_first(managed, stop, server.handle_exit)
        # The Ray cluster gone (`ray down`, the head's Ray stopped): stop serving and exit non-zero.
        supervisor = Supervisor(managed, stop, on_lost=lambda: setattr(server, "should_exit", True))
        supervisor.start()
        server.run()
    finally:
        stop.set()
        shutdown(settings, ray_connection, managed)
    if supervisor.lost:
        raise ConductorError(f"{supervisor.lost}: is its Ray cluster gone?")


def _stopping_first(managed: ManagedScheduler, supervisor_stop: threading.Event,
                    handle_exit: Callable[[int, Any], None]) -> Callable:
    """uvicorn's signal handler, preceded by stopping the supervisor and beginning the scheduler's stop.

    uvicorn stops listening at once but returns only once its open requests end; without
    this, pending jobs would still start in the meantime.
    """

    def handle(signum: int, frame: Any) -> None:
        supervisor_stop.set()  # it must not start the scheduler again once it has stopped
        managed.begin_stop()
        handle_exit(signum, frame)

    return handle


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def run_down(settings: Settings) -> None:
    """Stop everything: the service, every running job (requeued, or CANCELLED with --no-requeue),
    the keepers, and conductor's own local Ray."""
    _stop_service_process(settings)
    if not settings.ray_address and not connection.local_ray_running(settings):
        typer.echo("conductor is not running here (no local Ray in {})".format(settings.state_dir))
        return
    stopping = settings.model_copy(update={"shutdown_running_jobs": "requeue"})
    migrate(make_engine(stopping.effective_database_url))
    ray_connection = connection.connect(stopping)
    managed = ManagedScheduler(stopping)
    try:
        running = managed.ensure().running  # adopts what the keepers run, so that it is requeued and recorded
        managed.owner = True
        managed.release()
    finally:
        keepers = keeper_handle.kill_all(stopping.ray_namespace)
        connection.disconnect(stopping, ray_connection, stop_local=True)
    typer.echo(f"conductor stopped: {running} running job(s) requeued (or CANCELLED with --no-requeue), "
               f"{keepers} keeper(s) stopped" + ("" if settings.ray_address else ", the local Ray stopped"))


def _stop_service_process(settings: Settings) -> None:
    """SIGTERM the `conductor up` / `worker` of this state directory, if one runs, and wait for it."""
    path = service_pid_file(settings)
    try:
        pid = int(path.read_text(encoding="utf-8"))
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    typer.echo(f"Stopping conductor (pid {pid}) ...", err=True)
    deadline = time.monotonic() + settings.shutdown_wait_s + settings.kill_wait_s + 60
    while time.monotonic() < deadline and connection.process_alive(pid):  # (a zombie has exited)
        time.sleep(0.2)
