"""Submissions per second over HTTP (PostgreSQL + Redis), beside the same INSERT + XADD done directly.

Prints, for uvicorn with 1 worker and with 2 workers (``--workers``):
  * single submits: POST /api/jobs/submit from ``--clients`` concurrent clients (threads, one
    keep-alive httpx.Client each): jobs/s, p50/p95 latency; then from one client (no queueing);
  * batch submits: POST /api/jobs/batch with ``--batch-size`` jobs per request, from
    ``--batch-clients`` concurrent clients: jobs/s, p50 request latency;
and, as the baseline measured in the same run, in this process on one thread:
  * JobRepository.add_job + RedisQueue.push([id]) per job (the work of one submit),
  * JobRepository.add_jobs + RedisQueue.push(ids) per batch (the work of one batch request),
  * JobService.submit (the route's work without HTTP: validation, node check, INSERT, XADD).

The API runs as ``uvicorn --factory`` in a subprocess on a free port against a scratch PostgreSQL
database (created here, dropped at the end) and Redis db 8 under a unique namespace (only its own
stream is deleted at the end).  No scheduler runs: the jobs stay PENDING.  Every run checks that
the database holds and the stream carries exactly the jobs that were accepted.

Each HTTP line also gives the CPU time per job of the server (uvicorn and its workers) and of the
client threads: on a shared machine they vary less from run to run than the rates do.

The server runs uvicorn's default stack, as ``conductor up`` does: httptools + uvloop (both
conductor dependencies); ``--http h11 --loop asyncio`` gives the pure-Python stack for comparison.

Run:  .venv/bin/python bench/submit_http.py [--jobs 3000] [--batches 20] [--workers 1 2] [--http h11 --loop asyncio]
Needs PostgreSQL and Redis on 127.0.0.1.  Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx
import redis
from sqlalchemy import create_engine, func, select, text

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/8"
ROOT = Path(__file__).resolve().parent.parent
SETTINGS_ENV = "CONDUCTOR_BENCH_SETTINGS"
BODY = {"job": {"account": "bench", "name": "bench-job", "partition": "default", "ntasks_per_node": 1,
                "cpus_per_task": 1, "memory_per_node": "1G", "current_working_directory": "/tmp"},
        "script": "#!/bin/bash\ntrue\n"}


def server_app():  # noqa: ANN201 - uvicorn --factory entry point (runs in the server process)
    """The API for the settings in $CONDUCTOR_BENCH_SETTINGS (JSON of Settings)."""
    sys.path.insert(0, str(ROOT))
    from api.app import create_app
    from conductor.config import Settings

    return create_app(Settings(**json.loads(os.environ[SETTINGS_ENV])))


@dataclass
class Result:
    label: str
    jobs: int
    seconds: float
    latencies_ms: list[float]
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds

    def line(self) -> str:
        ordered = sorted(self.latencies_ms) or [0.0]
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        cpu = (f"   CPU/job: server {self.server_cpu_s / self.jobs * 1000:5.2f} ms, "
               f"client {self.client_cpu_s / self.jobs * 1000:5.2f} ms") if self.server_cpu_s else ""
        return (f"{self.label:58s} {self.rate:6.0f} jobs/s   p50 {statistics.median(ordered):7.1f} ms   "
                f"p95 {p95:7.1f} ms   ({self.jobs} jobs, {self.seconds:5.2f} s){cpu}")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a live process and its live children (uvicorn and its workers)."""
    ticks, found = 0, 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if stat.parent.name == str(pid) or fields[1] == str(pid):
                ticks, found = ticks + int(fields[11]) + int(fields[12]), found + 1
    return ticks / os.sysconf("SC_CLK_TCK")


# -- scratch backends ------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_backends() -> Iterator[dict]:
    """A fresh PostgreSQL database and a unique Redis namespace; removed afterwards."""
    name = f"conductor_bench_{uuid.uuid4().hex[:8]}"
    namespace = f"bench-http-{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    redis.Redis.from_url(REDIS).ping()
    try:
        yield {"database_url": PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", "redis_url": REDIS,
               "ray_namespace": namespace}
    finally:
        from conductor.queue import stream_key

        with contextlib.suppress(Exception):
            redis.Redis.from_url(REDIS).delete(stream_key(namespace))
        with contextlib.suppress(Exception), admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _settings(urls: dict, state_dir: Path):  # noqa: ANN202
    from conductor.config import Settings

    return Settings(state_dir=state_dir, node_name="bench-node", log_level="WARNING", **urls)


def prepare(settings) -> None:  # noqa: ANN001
    """Migrate, and record a node as a running scheduler would (so the fits-a-node check runs)."""
    from tests.helpers import node
    from conductor.service import JobService

    service = JobService.from_settings(settings)
    service.repository.replace_nodes([node("bench-node", 32, 65536, 0, {}, ray_node_id="ray-bench")])
    service.close()


def reset(settings) -> None:  # noqa: ANN001
    """Empty the jobs table and the stream between runs, so each run's check counts its own jobs."""
    from conductor.queue import stream_key

    engine = create_engine(settings.database_url)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE resource_allocations, queue_entries, jobs RESTART IDENTITY CASCADE"))
    engine.dispose()
    redis.Redis.from_url(REDIS).delete(stream_key(settings.ray_namespace))


def check_stored(settings, expected: int) -> None:  # noqa: ANN001
    """Every accepted job is a PENDING row and a stream entry (and nothing else is)."""
    from conductor.db.models import JobRow
    from conductor.queue import stream_key

    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        rows = connection.scalar(select(func.count()).select_from(JobRow).where(JobRow.state == "PENDING"))
    engine.dispose()
    queued = redis.Redis.from_url(REDIS).xlen(stream_key(settings.ray_namespace))
    if rows != expected or queued != expected:
        raise SystemExit(f"check failed: expected {expected} jobs, database holds {rows}, stream {queued}")


# -- the server ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(port: int, workers: int, http: str, loop: str) -> None:
    """What ``uvicorn --factory --workers N`` does, but accepted connections get TCP_NODELAY.

    uvicorn's multi-worker path binds the listener with proto 0; accepted sockets inherit it, and
    asyncio only sets TCP_NODELAY for IPPROTO_TCP, so every keep-alive request after the first
    waits ~40 ms for the client's delayed ACK (uvicorn issue 3149).  The single-process path is
    not affected.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    sys.path.insert(0, str(ROOT / "bench"))
    config = uvicorn.Config("submit_http:server_app", factory=True, host="127.0.0.1", port=port, workers=workers,
                            http=http, loop=loop, log_level="warning", access_log=False)
    bound = config.bind_socket()
    listener = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    if workers > 1:
        Multiprocess(config, sockets=[listener]).run()
    else:
        uvicorn.Server(config).run(sockets=[listener])


@dataclass
class Server:
    url: str
    pid: int


@contextlib.contextmanager
def api_server(settings, workers: int, http: str, loop: str, nodelay: bool) -> Iterator[Server]:  # noqa: ANN001
    """``uvicorn --factory`` serving create_app(settings) with ``workers`` processes (or serve())."""
    port = _free_port()
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, SETTINGS_ENV: settings.model_dump_json(), "PYTHONPATH": path}
    if nodelay:
        command = [sys.executable, __file__, "--serve", str(port), str(workers), http, loop]
    else:
        command = [sys.executable, "-m", "uvicorn", "--factory", "submit_http:server_app", "--app-dir",
                   str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                   "--http", http, "--loop", loop, "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the API server exited with status {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit("the API server did not become healthy within 60 s")


# -- clients ---------------------------------------------------------------------------------


def run_clients(server: Server, clients: int, requests: int, path: str, body: dict, jobs_per_request: int,
                label: str) -> Result:
    """``requests`` POSTs of ``body`` to ``path`` from ``clients`` threads; every one must succeed."""
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    payload = json.dumps(body).encode()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers={"content-type": "application/json"}) as http:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                sent = time.perf_counter()
                response = http.post(path, content=payload)
                elapsed = (time.perf_counter() - sent) * 1000
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    cpu, server_cpu, started = _cpu_s(), _tree_cpu_s(server.pid), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds, cpu = time.perf_counter() - started, _cpu_s() - cpu
    server_cpu = _tree_cpu_s(server.pid) - server_cpu
    if errors:
        raise SystemExit(f"{label}: {len(errors)} requests failed, first: {errors[0]}")
    return Result(label, requests * jobs_per_request, seconds, latencies, cpu, server_cpu)


def _resolved(choice: str, fast: str, fallback: str) -> str:
    """What uvicorn's "auto" picks: the C implementation when it is installed."""
    if choice != "auto":
        return choice
    try:
        __import__(fast)
    except ImportError:
        return fallback
    return fast


def http_runs(settings, workers: int, args: argparse.Namespace) -> list[Result]:  # noqa: ANN001
    results = []
    batch_body = {"jobs": [BODY] * args.batch_size}
    impl = (args.http, args.loop)
    http = f"HTTP {_resolved(args.http, 'httptools', 'h11')}+{_resolved(args.loop, 'uvloop', 'asyncio')}" + \
        (" nodelay" if args.nodelay else "")
    with api_server(settings, workers, *impl, args.nodelay) as server:
        run_clients(server, args.clients, 200, "/api/jobs/submit", BODY, 1, "warm-up")
        if args.batches:
            run_clients(server, 2, 2, "/api/jobs/batch", batch_body, args.batch_size, "warm-up")
        reset(settings)
        results.append(run_clients(server, args.clients, args.jobs, "/api/jobs/submit", BODY, 1,
                                   f"{http} single, {workers} worker(s), {args.clients} clients"))
        check_stored(settings, args.jobs)
        reset(settings)
        sequential = max(1, args.jobs // 6)  # one client: the latency of a submit without queueing
        results.append(run_clients(server, 1, sequential, "/api/jobs/submit", BODY, 1,
                                   f"{http} single, {workers} worker(s), 1 client"))
        check_stored(settings, sequential)
        reset(settings)
        if not args.batches:
            return results
        results.append(run_clients(server, args.batch_clients, args.batches, "/api/jobs/batch", batch_body,
                                   args.batch_size, f"{http} batch of {args.batch_size}, {workers} worker(s), "
                                                    f"{args.batch_clients} clients"))
        check_stored(settings, args.batches * args.batch_size)
        reset(settings)
    return results


# -- the direct baseline ---------------------------------------------------------------------


def _timed(label: str, count: int, jobs_each: int, work: Callable[[], None]) -> Result:
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        sent = time.perf_counter()
        work()
        latencies.append((time.perf_counter() - sent) * 1000)
    return Result(label, count * jobs_each, time.perf_counter() - started, latencies)


def direct_runs(settings, args: argparse.Namespace) -> list[Result]:  # noqa: ANN001
    """The same INSERT + XADD in this process, one thread: what HTTP and validation add up on."""
    from api.schemas import SubmitRequest
    from conductor.db.repository import JobRepository
    from conductor.db.session import make_engine
    from conductor.queue import RedisQueue
    from conductor.service import JobService

    spec = SubmitRequest.model_validate(BODY).to_spec(default_dir="/tmp")
    spec = JobService(settings, None, None)._complete(spec)  # noqa: SLF001 - the stored spec, as submit makes it
    engine = make_engine(settings.database_url)
    repo, job_queue = JobRepository(engine), RedisQueue(settings.redis_url, settings.ray_namespace)
    service = JobService.from_settings(settings)
    results = []
    try:
        _timed("warm-up", 50, 1, lambda: job_queue.push([repo.add_job(spec).id]))
        reset(settings)
        results.append(_timed("direct add_job + push, 1 thread", args.jobs, 1,
                              lambda: job_queue.push([repo.add_job(spec).id])))
        check_stored(settings, args.jobs)
        reset(settings)
        if args.batches and hasattr(repo, "add_jobs"):
            specs = [spec] * args.batch_size
            results.append(_timed(f"direct add_jobs({args.batch_size}) + push, 1 thread", args.batches,
                                  args.batch_size, lambda: job_queue.push([j.id for j in repo.add_jobs(specs)])))
            check_stored(settings, args.batches * args.batch_size)
            reset(settings)
        results.append(_timed("JobService.submit in-process, 1 thread", args.jobs, 1,
                              lambda: service.submit(spec)))
        check_stored(settings, args.jobs)
        reset(settings)
    finally:
        service.close()
        job_queue.close()
        engine.dispose()
    return results


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        port, workers, http, loop = sys.argv[2:6]
        serve(int(port), int(workers), http, loop)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000, help="single submits per run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for single submits")
    parser.add_argument("--batches", type=int, default=20, help="batch requests per run")
    parser.add_argument("--batch-size", type=int, default=500, help="jobs per batch request")
    parser.add_argument("--batch-clients", type=int, default=2, help="concurrent clients for batch submits")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn worker counts to run")
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto",
                        help="uvicorn's HTTP parser (auto, as conductor up: httptools when installed)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="uvicorn's event loop (auto, as conductor up: uvloop when installed)")
    parser.add_argument("--nodelay", action="store_true", help="serve through serve(): like uvicorn --workers, "
                                                                "with TCP_NODELAY on accepted connections")
    parser.add_argument("--no-direct", action="store_true", help="skip the in-process baseline")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import tempfile

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as tmp, scratch_backends() as urls:
        settings = _settings(urls, Path(tmp) / "state")
        prepare(settings)
        results = [] if args.no_direct else direct_runs(settings, args)
        for workers in args.workers:
            results.extend(http_runs(settings, workers, args))
    print()
    for result in results:
        print(result.line())
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
