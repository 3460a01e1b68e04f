"""JobRepository: every read and write of jobs, allocations and nodes.

State changes are conditional UPDATEs (``WHERE id = :id AND state = :expected``) that
report whether they matched, so a job id delivered twice starts once (invariant 2).
Driver errors become conductor's own exceptions here and nowhere else.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Iterable, Iterator, Sequence

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from conductor import jobs
from conductor.db.models import AllocationRow, JobRow, NodeRow
from conductor.db.session import make_sessionmaker
from conductor.exceptions import DatabaseUnavailable, JobNotFound


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn a lost or refused database connection into DatabaseUnavailable."""
    try:
        yield
    except PoolTimeoutError as exc:  # every pooled connection busy: overloaded, try again later
        raise DatabaseUnavailable(f"no free database connection: {exc}") from exc
    except OperationalError as exc:
        raise DatabaseUnavailable(_first_line(exc)) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable(_first_line(exc)) from exc
        raise


def _first_line(exc: DBAPIError) -> str:
    text = str(exc.orig if exc.orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything conductor stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Start:
    """The scheduler's decision to run one job on one node."""

    job_id: int
    node_name: str
    ray_node_id: str
    cpus: int
    memory_mb: int
    gpus: int = 0
    #: The other nodes of a multi-node job, as (node name, Ray node id); each holds the same.
    more_nodes: tuple[tuple[str, str], ...] = ()

    @property
    def all_nodes(self) -> list[tuple[str, str]]:
        return [(self.node_name, self.ray_node_id), *self.more_nodes]


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as the scheduler records it."""

    state: jobs.JobState
    reason: str
    exit_code: int | None = None
    signal: int | None = None
    cpu_time_user_s: float | None = None
    cpu_time_system_s: float | None = None
    max_rss_kb: int | None = None


@dataclass(frozen=True)
class NodeInfo:
    """A node's capacity as stored for the API (the scheduler owns live accounting)."""

    name: str
    ray_node_id: str
    total_cpus: int
    total_memory_mb: int
    total_gpus: int
    labels: dict
    alive: bool


class JobRepository:
    """Reads and conditional writes over one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = make_sessionmaker(engine)

    @property
    def engine(self) -> Engine:
        """The engine, for read-side modules (listing) that share it."""
        return self._engine

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        with translate_errors(), self._sessions.begin() as session:
            yield session

    # -- submit and read ----------------------------------------------------------------

    def add_job(self, spec: jobs.JobSpec, *, default_output_dir: str | None = None) -> jobs.Job:
        """Insert a PENDING job and commit; returns it with its id and output paths."""
        # The batch path with one job: on PostgreSQL the id comes from the sequence first, so the row
        # is written once with its paths (no UPDATE leaving a dead row version behind per submit).
        return self.add_jobs([spec], default_output_dir=default_output_dir)[0]

    def add_array(self, spec: jobs.JobSpec, indexes: Sequence[int], *,
                  default_output_dir: str | None = None) -> list[jobs.Job]:
        """Insert one PENDING job per array index in one transaction; the first one's id is the array's."""
        with self._session() as session:
            rows = [_row_from_spec(replace(spec, array_task_id=index)) for index in indexes]
            session.add(rows[0])
            session.flush()
            for row in rows:
                row.array_job_id = rows[0].id
            session.add_all(rows[1:])
            session.flush()
            for row in rows:
                row.stdout_path, row.stderr_path = _output_paths(row, default_output_dir)
            session.flush()
            return [job_from_row(row) for row in rows]

    def add_jobs(self, specs: Sequence[jobs.JobSpec], *, default_output_dir: str | None = None) -> list[jobs.Job]:
        """Insert PENDING jobs, in order, in one transaction and one multi-row INSERT; returns them.

        Output paths need the ids.  On PostgreSQL the ids are drawn from the sequence first, so the
        paths go in with the INSERT; elsewhere (SQLite) ``INSERT ... RETURNING`` hands back the ids
        in parameter order and one executemany UPDATE stores the paths.  This is the submit path:
        Core statements on one connection, no ORM unit of work (it cost about a third of the
        database layer's CPU per submit).
        """
        if not specs:
            return []
        now = utcnow()
        values = [_values_from_spec(spec, now) for spec in specs]
        with translate_errors(), self._engine.begin() as connection:
            if self._engine.dialect.name == "postgresql":
                for row, job_id in zip(values, _next_job_ids(connection, len(values))):
                    row["id"] = job_id
                    row["stdout_path"], row["stderr_path"] = _output_paths(SimpleNamespace(**row), default_output_dir)
                connection.execute(_JOBS.insert(), values)
            else:
                ids = connection.scalars(_JOBS.insert().returning(_JOBS.c.id, sort_by_parameter_order=True),
                                         values).all()
                for row, job_id in zip(values, ids):
                    row["id"] = job_id
                    row["stdout_path"], row["stderr_path"] = _output_paths(SimpleNamespace(**row), default_output_dir)
                connection.execute(update(_JOBS).where(_JOBS.c.id == bindparam("job_id")).values(
                    stdout_path=bindparam("out"), stderr_path=bindparam("err")),
                    [{"job_id": row["id"], "out": row["stdout_path"], "err": row["stderr_path"]} for row in values])
        return [job_from_row(SimpleNamespace(**{**_UNSET_COLUMNS, **row})) for row in values]

    def delete_pending_many(self, job_ids: Sequence[int]) -> int:
        """Remove jobs that never left PENDING (a refused enqueue of an array)."""
        with self._session() as session:
            return session.execute(delete(JobRow).where(JobRow.id.in_(list(job_ids)),
                                                        JobRow.state == jobs.JobState.PENDING.value)).rowcount

    def delete_pending(self, job_id: int) -> bool:
        """Remove a job that never left PENDING (its enqueue failed); reports whether it matched."""
        with self._session() as session:
            return bool(session.execute(
                delete(JobRow).where(JobRow.id == job_id, JobRow.state == jobs.JobState.PENDING.value)).rowcount)

    def get(self, job_id: int) -> jobs.Job:
        with self._session() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise JobNotFound(job_id)
            return job_from_row(row)

    def get_many(self, job_ids: Iterable[int]) -> list[jobs.Job]:
        ids = list(set(job_ids))
        if not ids:
            return []
        with self._session() as session:
            rows = session.scalars(select(JobRow).where(JobRow.id.in_(ids))).all()
            return [job_from_row(row) for row in rows]

    def expand_ids(self, job_ids: Iterable[int]) -> list[int]:
        """The ids themselves plus, for an array job's id, every task of the array (Slurm's scancel 40)."""
        ids = list(set(job_ids))
        with self._session() as session:
            tasks = session.scalars(select(JobRow.id).where(JobRow.array_job_id.in_(ids)))
            return sorted(set(ids) | set(tasks))

    def states_of(self, job_ids: Iterable[int]) -> dict[int, jobs.JobState]:
        ids = list(set(job_ids))
        if not ids:
            return {}
        with self._session() as session:
            rows = session.execute(select(JobRow.id, JobRow.state).where(JobRow.id.in_(ids))).all()
            return {job_id: jobs.JobState(state) for job_id, state in rows}

    def has_earlier_active_namesake(self, job: jobs.Job) -> bool:
        """singleton: an earlier job of the same name and user is PENDING or RUNNING."""
        active = (jobs.JobState.PENDING.value, jobs.JobState.RUNNING.value)
        with self._session() as session:
            return session.scalar(select(func.count()).select_from(JobRow).where(
                JobRow.name == job.spec.name, JobRow.user == job.spec.user, JobRow.id < job.id,
                JobRow.state.in_(active))) > 0

    def ids_in_state(self, state: jobs.JobState) -> list[int]:
        with self._session() as session:
            return list(session.scalars(select(JobRow.id).where(JobRow.state == state.value).order_by(JobRow.id)))

    # -- scheduler transitions ----------------------------------------------------------

    def start_jobs(self, starts: Sequence[Start]) -> set[int]:
        """PENDING -> RUNNING plus an allocation row, for each start, in one transaction.

        Returns the ids that were still PENDING (and so were started).
        """
        started: set[int] = set()
        now = utcnow()
        with self._session() as session:
            for start in starts:
                matched = session.execute(
                    update(JobRow)
                    .where(JobRow.id == start.job_id, JobRow.state == jobs.JobState.PENDING.value)
                    .values(state=jobs.JobState.RUNNING.value, reason=jobs.Reason.NONE, start_time=now,
                            end_time=None, node_name=start.node_name,
                            node_list=",".join(name for name, _ in start.all_nodes))
                ).rowcount
                if matched:
                    for node_name, ray_node_id in start.all_nodes:
                        session.add(AllocationRow(
                            job_id=start.job_id, node_name=node_name, ray_node_id=ray_node_id,
                            allocated_cpus=start.cpus, allocated_memory_mb=start.memory_mb,
                            allocated_gpus=start.gpus, released=False, allocated_at=now))
                    started.add(start.job_id)
        return started

    def finish_job(self, job_id: int, outcome: Outcome) -> bool:
        """RUNNING -> a final state, end time, allocation released: one transaction."""
        now = utcnow()
        with self._session() as session:
            matched = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == jobs.JobState.RUNNING.value)
                .values(state=outcome.state.value, reason=outcome.reason, exit_code=outcome.exit_code,
                        signal=outcome.signal, end_time=now, cpu_time_user_s=outcome.cpu_time_user_s,
                        cpu_time_system_s=outcome.cpu_time_system_s, max_rss_kb=outcome.max_rss_kb)
            ).rowcount
            _release(session, job_id, now)
            return bool(matched)

    def requeue_running(self, job_id: int, reason: str) -> bool:
        """RUNNING -> PENDING (restart count + 1), allocation released: one transaction."""
        now = utcnow()
        with self._session() as session:
            matched = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == jobs.JobState.RUNNING.value)
                .values(state=jobs.JobState.PENDING.value, reason=reason, start_time=None, node_name=None,
                        cancel_requested=False, restart_count=JobRow.restart_count + 1)
            ).rowcount
            _release(session, job_id, now)
            return bool(matched)

    def cancel_pending(self, job_ids: Sequence[int]) -> list[int]:
        """PENDING -> CANCELLED for each id still pending; returns those ids."""
        now = utcnow()
        with self._session() as session:
            ids = list(session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), JobRow.state == jobs.JobState.PENDING.value)
                .values(state=jobs.JobState.CANCELLED.value, reason=jobs.Reason.NONE, end_time=now, exit_code=0,
                        signal=0)
                .returning(JobRow.id)))
        return ids

    def request_cancel(self, job_ids: Sequence[int]) -> list[int]:
        """Record the intent to cancel RUNNING jobs (the scheduler then ends them CANCELLED)."""
        with self._session() as session:
            return list(session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), JobRow.state == jobs.JobState.RUNNING.value)
                .values(cancel_requested=True)
                .returning(JobRow.id)))

    def set_hold(self, job_ids: Sequence[int], hold: str | None) -> list[int]:
        """Hold (``"user"``/``"admin"``) or release (None) PENDING jobs; returns the ids changed."""
        condition = JobRow.hold.is_(None) if hold else JobRow.hold.is_not(None)
        reason = {None: jobs.Reason.NONE, "user": jobs.Reason.HELD_USER, "admin": jobs.Reason.HELD_ADMIN}[hold]
        with self._session() as session:
            return list(session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), JobRow.state == jobs.JobState.PENDING.value, condition)
                .values(hold=hold, reason=reason)
                .returning(JobRow.id)))

    def requeue_ended(self, job_ids: Sequence[int]) -> list[int]:
        """A finished job back to PENDING (scontrol requeue): restart count + 1, run data cleared."""
        terminal = [state.value for state in jobs.TERMINAL_STATES]
        with self._session() as session:
            return list(session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), JobRow.state.in_(terminal))
                .values(state=jobs.JobState.PENDING.value, reason=jobs.Reason.REQUEUED, start_time=None,
                        end_time=None, exit_code=None, signal=None, node_name=None, cancel_requested=False,
                        restart_count=JobRow.restart_count + 1)
                .returning(JobRow.id)))

    def set_pending_reasons(self, reasons: dict[str, Sequence[int]]) -> None:
        """Record why pending jobs wait: one UPDATE per reason."""
        if not any(reasons.values()):
            return
        with self._session() as session:
            for reason, ids in reasons.items():
                if ids:
                    session.execute(
                        update(JobRow)
                        .where(JobRow.id.in_(list(ids)), JobRow.state == jobs.JobState.PENDING.value)
                        .values(reason=reason))

    # -- allocations and nodes ----------------------------------------------------------

    def usage_records(self, since: datetime) -> list[tuple[str, int, datetime, datetime | None]]:
        """(account, CPUs over all nodes, start, end) of jobs that ran and ended since ``since`` (fair share)."""
        cpus = JobRow.cpus_per_task * JobRow.ntasks_per_node * JobRow.nodes
        with self._session() as session:
            rows = session.execute(
                select(JobRow.account, cpus, JobRow.start_time, JobRow.end_time)
                .where(JobRow.start_time.is_not(None), JobRow.end_time >= since)).all()
            return [(account, int(total), _aware(start), _aware(end)) for account, total, start, end in rows]

    def unreleased_by_node(self) -> dict[str, tuple[int, int]]:
        """ray_node_id -> (CPUs, memory MB) held by unreleased allocation rows."""
        with self._session() as session:
            rows = session.execute(
                select(AllocationRow.ray_node_id, func.sum(AllocationRow.allocated_cpus),
                       func.sum(AllocationRow.allocated_memory_mb))
                .where(AllocationRow.released.is_(False))
                .group_by(AllocationRow.ray_node_id)).all()
            return {node: (int(cpus or 0), int(mem or 0)) for node, cpus, mem in rows}

    def unreleased_allocations(self) -> list[jobs.Allocation]:
        """Every allocation still held, oldest first."""
        with self._session() as session:
            rows = session.scalars(select(AllocationRow).where(AllocationRow.released.is_(False))
                                   .order_by(AllocationRow.id))
            return [jobs.Allocation(r.job_id, r.node_name, r.ray_node_id, r.allocated_cpus, r.allocated_memory_mb,
                                    r.allocated_gpus) for r in rows]

    def release_orphaned_allocations(self) -> int:
        """Release allocation rows whose job is no longer RUNNING (repair after a crash)."""
        now = utcnow()
        with self._session() as session:
            running = select(JobRow.id).where(JobRow.state == jobs.JobState.RUNNING.value)
            return session.execute(
                update(AllocationRow)
                .where(AllocationRow.released.is_(False), AllocationRow.job_id.not_in(running))
                .values(released=True, released_at=now)).rowcount

    def replace_nodes(self, nodes: Sequence[NodeInfo]) -> None:
        """Record the live node set: listed nodes alive, all others not."""
        now = utcnow()
        with self._session() as session:
            session.execute(update(NodeRow).values(alive=False, updated_at=now))
            for node in nodes:
                session.merge(NodeRow(name=node.name, ray_node_id=node.ray_node_id, total_cpus=node.total_cpus,
                                      total_memory_mb=node.total_memory_mb, total_gpus=node.total_gpus,
                                      labels=node.labels, alive=node.alive, updated_at=now))

    def nodes(self, *, alive_only: bool = True) -> list[NodeInfo]:
        with self._session() as session:
            query = select(NodeRow).order_by(NodeRow.name)
            if alive_only:
                query = query.where(NodeRow.alive.is_(True))
            return [NodeInfo(row.name, row.ray_node_id, row.total_cpus, row.total_memory_mb, row.total_gpus,
                             dict(row.labels or {}), row.alive) for row in session.scalars(query)]

    def active_summary(self) -> list[tuple[str, str, str, int, int]]:
        """(state, reason, partition, jobs, CPUs) for PENDING and RUNNING jobs: the queue at a glance."""
        active = (jobs.JobState.PENDING.value, jobs.JobState.RUNNING.value)
        cpus = JobRow.cpus_per_task * JobRow.ntasks_per_node
        with self._session() as session:
            rows = session.execute(
                select(JobRow.state, JobRow.reason, JobRow.partition, func.count(), func.sum(cpus))
                .where(JobRow.state.in_(active)).group_by(JobRow.state, JobRow.reason, JobRow.partition)).all()
            return [(state, reason, partition, int(count), int(total or 0))
                    for state, reason, partition, count, total in rows]

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless a trivial query succeeds."""
        with self._session() as session:
            session.execute(select(1))


def _release(session: Session, job_id: int, now: datetime) -> None:
    session.execute(
        update(AllocationRow)
        .where(AllocationRow.job_id == job_id, AllocationRow.released.is_(False))
        .values(released=True, released_at=now))


def _values_from_spec(spec: jobs.JobSpec, submit_time: datetime) -> dict:
    """The column values of a new PENDING jobs row (id and output paths come once the id is known)."""
    return dict(
        name=spec.name, account=spec.account, partition=spec.partition, user=spec.user, script=spec.script,
        argv=list(spec.argv), working_dir=spec.working_dir, environment=dict(spec.environment),
        cpus_per_task=spec.cpus_per_task, ntasks_per_node=spec.ntasks_per_node,
        memory_per_node_mb=spec.memory_per_node_mb, time_limit_s=spec.time_limit_s, priority=spec.priority,
        nice=spec.nice, requeue=spec.requeue, restart_count=0, state=jobs.JobState.PENDING.value,
        reason=jobs.Reason.NONE, submit_time=submit_time, stdout_pattern=spec.stdout_pattern,
        stderr_pattern=spec.stderr_pattern, stdout_path="", stderr_path="", hold=spec.hold,
        begin_time=spec.begin_time, dependency=spec.dependency, array_job_id=spec.array_job_id,
        array_task_id=spec.array_task_id, array_max_running=spec.array_max_running, cancel_requested=False,
        nodes=spec.nodes, gpus_per_node=spec.gpus_per_node, run_as=spec.run_as)


def _row_from_spec(spec: jobs.JobSpec) -> JobRow:
    return JobRow(**_values_from_spec(spec, utcnow()))


def _next_job_ids(connection: Connection | Session, count: int) -> list[int]:
    """``count`` fresh ids from the jobs id sequence (PostgreSQL), ascending."""
    if count == 1:
        return [connection.scalar(_NEXT_JOB_ID)]
    return sorted(connection.scalars(_NEXT_JOB_IDS, {"count": count}))


_JOBS = JobRow.__table__
_NEXT_JOB_ID = text("SELECT nextval(pg_get_serial_sequence('jobs', 'id'))")
_NEXT_JOB_IDS = text("SELECT nextval(pg_get_serial_sequence('jobs', 'id')) FROM generate_series(1, :count)")
#: What a freshly inserted row holds in the columns an insert leaves unset.
_UNSET_COLUMNS = dict.fromkeys(_JOBS.columns.keys())


def _output_paths(row: JobRow | SimpleNamespace, default_dir: str | None) -> tuple[str, str]:
    """Expand -o/-e patterns once the id is known; relative paths are under the working directory."""
    default = jobs.DEFAULT_ARRAY_OUTPUT_PATTERN if row.array_job_id is not None else jobs.DEFAULT_OUTPUT_PATTERN
    if default_dir:
        default = f"{default_dir.rstrip('/')}/{default}"
    out_pattern = row.stdout_pattern or default
    err_pattern = row.stderr_pattern or out_pattern

    def expand(pattern: str) -> str:
        path = jobs.expand_output_pattern(pattern, job_id=row.id, name=row.name, user=row.user,
                                          array_job_id=row.array_job_id, array_task_id=row.array_task_id)
        return path if path.startswith("/") else f"{row.working_dir.rstrip('/')}/{path}"

    return expand(out_pattern), expand(err_pattern)


def job_from_row(row: JobRow) -> jobs.Job:
    """The domain view of a jobs row (every read maps rows through here)."""
    spec = jobs.JobSpec(
        script=row.script, name=row.name, account=row.account, partition=row.partition, user=row.user,
        argv=tuple(row.argv or ()), working_dir=row.working_dir, environment=dict(row.environment or {}),
        cpus_per_task=row.cpus_per_task, ntasks_per_node=row.ntasks_per_node,
        memory_per_node_mb=row.memory_per_node_mb, time_limit_s=row.time_limit_s, priority=row.priority,
        nice=row.nice, requeue=row.requeue, stdout_pattern=row.stdout_pattern, stderr_pattern=row.stderr_pattern,
        hold=row.hold, begin_time=_aware(row.begin_time), dependency=row.dependency,
        array_job_id=row.array_job_id, array_task_id=row.array_task_id, array_max_running=row.array_max_running,
        nodes=row.nodes or 1, gpus_per_node=row.gpus_per_node or 0, run_as=row.run_as or "")
    return jobs.Job(
        id=row.id, spec=spec, state=jobs.JobState(row.state), reason=row.reason,
        submit_time=_aware(row.submit_time), start_time=_aware(row.start_time), end_time=_aware(row.end_time),
        exit_code=row.exit_code, signal=row.signal, node_name=row.node_name, node_list=row.node_list,
        stdout_path=row.stdout_path,
        stderr_path=row.stderr_path, restart_count=row.restart_count, cpu_time_user_s=row.cpu_time_user_s,
        cpu_time_system_s=row.cpu_time_system_s, max_rss_kb=row.max_rss_kb, cancel_requested=row.cancel_requested)
