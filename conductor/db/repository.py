"""JobRepository: every read and write of jobs, allocations and nodes.

State changes are conditional UPDATEs (``WHERE id = :id AND state = :expected``) that
report whether they matched, so a job id delivered twice starts once (invariant 2).
Driver errors become conductor's own exceptions here and nowhere else.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import replace
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Iterable, Iterator, Mapping, Sequence

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from conductor import dependencies, jobs
from conductor.db.errors import translate_errors
from conductor.db.models import AllocationRow, JobRow, NodeRow
from conductor.db.session import make_sessionmaker
from conductor.exceptions import JobNotFound
from conductor.resources import Allocation, Node, Resources


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything conductor stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


#: A reason's message is cut to this many characters when stored (the one place it is cut).
MAX_REASON_MESSAGE = 500


def _message(text: str) -> str:
    return text[:MAX_REASON_MESSAGE]


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

    def start_jobs(self, allocations: Sequence[Allocation]) -> set[int]:
        """PENDING -> RUNNING plus one allocation row per node, for each allocation, in one transaction.

        Returns the ids that were still PENDING (and so were started).
        """
        started: set[int] = set()
        now = utcnow()
        with self._session() as session:
            for allocation in allocations:
                matched = session.execute(
                    update(JobRow)
                    .where(JobRow.id == allocation.job_id, JobRow.state == jobs.JobState.PENDING.value)
                    .values(state=jobs.JobState.RUNNING.value, reason=jobs.Reason.NONE.value, reason_message="",
                            start_time=now, end_time=None, node_name=allocation.first.name,
                            node_list=",".join(allocation.node_names))
                ).rowcount
                if matched:
                    per_node = allocation.per_node
                    for node in allocation.nodes:
                        session.add(AllocationRow(
                            job_id=allocation.job_id, node_name=node.name, ray_node_id=node.ray_node_id,
                            allocated_cpus=per_node.cpus, allocated_memory_mb=per_node.memory_mb,
                            allocated_gpus=per_node.gpus, released=False, allocated_at=now))
                    started.add(allocation.job_id)
        return started

    def finish_job(self, job_id: int, ending: jobs.Ending) -> bool:
        """RUNNING -> a final state, end time, allocation released: one transaction."""
        now = utcnow()
        usage = ending.usage
        with self._session() as session:
            matched = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == jobs.JobState.RUNNING.value)
                .values(state=ending.state.value, reason=ending.reason.value, reason_message=_message(ending.message),
                        exit_code=ending.exit_code, signal=ending.signal, end_time=now,
                        cpu_time_user_s=usage.cpu_time_user_s, cpu_time_system_s=usage.cpu_time_system_s,
                        max_rss_kb=usage.max_rss_kb)
            ).rowcount
            _release(session, job_id, now)
            return bool(matched)

    def finish_jobs(self, endings: Sequence[tuple[int, jobs.Ending]]) -> None:
        """``finish_job`` for many jobs in one transaction (one statement each for the rows and the releases)."""
        if not endings:
            return
        now = utcnow()
        params = [{"b_id": job_id, "b_state": e.state.value, "b_reason": e.reason.value,
                   "b_message": _message(e.message), "b_exit": e.exit_code, "b_signal": e.signal,
                   "b_user": e.usage.cpu_time_user_s, "b_system": e.usage.cpu_time_system_s,
                   "b_rss": e.usage.max_rss_kb} for job_id, e in endings]
        with translate_errors(), self._engine.begin() as connection:
            connection.execute(
                update(_JOBS).where(_JOBS.c.id == bindparam("b_id"), _JOBS.c.state == jobs.JobState.RUNNING.value)
                .values(state=bindparam("b_state"), reason=bindparam("b_reason"), reason_message=bindparam("b_message"),
                        exit_code=bindparam("b_exit"), signal=bindparam("b_signal"), end_time=now,
                        cpu_time_user_s=bindparam("b_user"), cpu_time_system_s=bindparam("b_system"),
                        max_rss_kb=bindparam("b_rss")), params)
            allocations = AllocationRow.__table__
            connection.execute(
                update(allocations).where(allocations.c.job_id.in_([job_id for job_id, _ in endings]),
                                          allocations.c.released.is_(False))
                .values(released=True, released_at=now))

    def requeue_running(self, job_id: int, message: str) -> jobs.Job | None:
        """RUNNING -> PENDING (restart count + 1, reason Requeued), allocation released: one transaction.

        Returns the job as it is now PENDING, or None when it was not RUNNING.
        """
        now = utcnow()
        with self._session() as session:
            row = session.scalars(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == jobs.JobState.RUNNING.value)
                .values(state=jobs.JobState.PENDING.value, reason=jobs.Reason.REQUEUED.value,
                        reason_message=_message(message), start_time=None, node_name=None,
                        cancel_requested=False, restart_count=JobRow.restart_count + 1)
                .returning(JobRow)
                .execution_options(synchronize_session=False)).one_or_none()
            _release(session, job_id, now)
            return None if row is None else job_from_row(row)

    def cancel_pending(self, job_ids: Sequence[int]) -> list[int]:
        """PENDING -> CANCELLED for each id still pending; returns those ids."""
        now = utcnow()
        with self._session() as session:
            ids = list(session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), JobRow.state == jobs.JobState.PENDING.value)
                .values(state=jobs.JobState.CANCELLED.value, reason=jobs.Reason.NONE.value, reason_message="",
                        end_time=now, exit_code=0, signal=0)
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
        reason = {None: jobs.Reason.NONE, "user": jobs.Reason.HELD_USER, "admin": jobs.Reason.HELD_ADMIN}[hold].value
        with self._session() as session:
            return list(session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), JobRow.state == jobs.JobState.PENDING.value, condition)
                .values(hold=hold, reason=reason, reason_message="")
                .returning(JobRow.id)))

    def requeue_ended(self, job_ids: Sequence[int]) -> list[int]:
        """A finished job back to PENDING (scontrol requeue): restart count + 1, run data cleared."""
        terminal = [state.value for state in jobs.TERMINAL_STATES]
        with self._session() as session:
            return list(session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), JobRow.state.in_(terminal))
                .values(state=jobs.JobState.PENDING.value, reason=jobs.Reason.REQUEUED.value, reason_message="",
                        start_time=None,
                        end_time=None, exit_code=None, signal=None, node_name=None, cancel_requested=False,
                        restart_count=JobRow.restart_count + 1)
                .returning(JobRow.id)))

    def set_pending_reasons(self, reasons: Mapping[jobs.Reason, Sequence[int]], message: str = "") -> None:
        """Record why pending jobs wait: one UPDATE per reason (``message``, if any, for all of them)."""
        if not any(reasons.values()):
            return
        with self._session() as session:
            for reason, ids in reasons.items():
                if ids:
                    session.execute(
                        update(JobRow)
                        .where(JobRow.id.in_(list(ids)), JobRow.state == jobs.JobState.PENDING.value)
                        .values(reason=jobs.Reason(reason).value, reason_message=_message(message)))

    # -- allocations and nodes ----------------------------------------------------------

    def usage_records(self, since: datetime) -> list[tuple[str, int, datetime, datetime | None]]:
        """(account, CPUs over all nodes, start, end) of jobs that ran and ended since ``since`` (fair share)."""
        cpus = JobRow.cpus_per_task * JobRow.ntasks_per_node * JobRow.nodes
        with self._session() as session:
            rows = session.execute(
                select(JobRow.account, cpus, JobRow.start_time, JobRow.end_time)
                .where(JobRow.start_time.is_not(None), JobRow.end_time >= since)).all()
            return [(account, int(total), _aware(start), _aware(end)) for account, total, start, end in rows]

    def unreleased_by_node(self) -> dict[str, Resources]:
        """ray_node_id -> what unreleased allocation rows hold there."""
        with self._session() as session:
            rows = session.execute(
                select(AllocationRow.ray_node_id, func.sum(AllocationRow.allocated_cpus),
                       func.sum(AllocationRow.allocated_memory_mb), func.sum(AllocationRow.allocated_gpus))
                .where(AllocationRow.released.is_(False))
                .group_by(AllocationRow.ray_node_id)).all()
            return {node: Resources(int(cpus or 0), int(mem or 0), int(gpus or 0)) for node, cpus, mem, gpus in rows}

    def unreleased_allocations(self) -> list[Allocation]:
        """Every allocation still held, one per job (its nodes in allocation order), oldest first."""
        with self._session() as session:
            rows = session.execute(
                select(AllocationRow, NodeRow).outerjoin(NodeRow, NodeRow.name == AllocationRow.node_name)
                .where(AllocationRow.released.is_(False)).order_by(AllocationRow.id)).all()
            nodes: dict[int, list[Node]] = {}
            per_node: dict[int, Resources] = {}
            for allocation, node in rows:
                nodes.setdefault(allocation.job_id, []).append(_allocated_node(allocation, node))
                per_node[allocation.job_id] = Resources(allocation.allocated_cpus, allocation.allocated_memory_mb,
                                                        allocation.allocated_gpus)
            return [Allocation(job_id, tuple(held), per_node[job_id]) for job_id, held in nodes.items()]

    def release_orphaned_allocations(self) -> int:
        """Release allocation rows whose job is no longer RUNNING (repair after a crash)."""
        now = utcnow()
        with self._session() as session:
            running = select(JobRow.id).where(JobRow.state == jobs.JobState.RUNNING.value)
            return session.execute(
                update(AllocationRow)
                .where(AllocationRow.released.is_(False), AllocationRow.job_id.not_in(running))
                .values(released=True, released_at=now)).rowcount

    def replace_nodes(self, nodes: Sequence[Node]) -> None:
        """Record the live node set: listed nodes alive, all others not."""
        now = utcnow()
        with self._session() as session:
            session.execute(update(NodeRow).values(alive=False, updated_at=now))
            for node in nodes:
                capacity = node.capacity
                session.merge(NodeRow(
                    name=node.name, ray_node_id=node.ray_node_id, total_cpus=capacity.cpus,
                    total_memory_mb=capacity.memory_mb, total_gpus=capacity.gpus, labels=dict(node.labels),
                    partitions=None if node.partitions is None else sorted(node.partitions), alive=node.alive,
                    updated_at=now))

    def nodes(self, *, alive_only: bool = True) -> list[Node]:
        with self._session() as session:
            query = select(NodeRow).order_by(NodeRow.name)
            if alive_only:
                query = query.where(NodeRow.alive.is_(True))
            return [_node_from_row(row) for row in session.scalars(query)]

    def active_summary(self) -> list[tuple[str, jobs.Reason, str, int, int]]:
        """(state, reason, partition, jobs, CPUs over all their nodes) for PENDING and RUNNING jobs."""
        active = (jobs.JobState.PENDING.value, jobs.JobState.RUNNING.value)
        cpus = JobRow.cpus_per_task * JobRow.ntasks_per_node * JobRow.nodes
        with self._session() as session:
            rows = session.execute(
                select(JobRow.state, JobRow.reason, JobRow.partition, func.count(), func.sum(cpus))
                .where(JobRow.state.in_(active)).group_by(JobRow.state, JobRow.reason, JobRow.partition)).all()
            return [(state, jobs.Reason(reason), partition, int(count), int(total or 0))
                    for state, reason, partition, count, total in rows]

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless a trivial query succeeds."""
        with self._session() as session:
            session.execute(select(1))

    # -- dependencies ---------------------------------------------------------------------

    def dependency_facts(self, job_ids: Iterable[int], tasks: Iterable[tuple[int, int]] = ()) -> dependencies.Facts:
        """What dependencies on these jobs and (array id, task id) pairs need, in one transaction.

        For each id: its state and, when it is an array's id, which states the array's tasks are
        in: the distinct states, found by stepping through the (array_job_id, state) index (at
        most one probe per state), so an array of 10,000 tasks costs what one of 3 does.  A task
        is one lookup on (array_job_id, array_task_id).
        """
        ids = sorted(set(job_ids))
        by_array: dict[int, set[int]] = {}
        for array_id, task_id in tasks:
            by_array.setdefault(array_id, set()).add(task_id)
        states: dict[int, jobs.JobState] = {}
        found: dict[tuple[int, int], jobs.JobState] = {}
        array_states: dict[int, set[str]] = {}
        with self._session() as session:
            for chunk in _chunks(ids):
                rows = session.execute(select(JobRow.id, JobRow.state, JobRow.array_job_id).where(JobRow.id.in_(chunk)))
                for job_id, state, array_job_id in rows:
                    states[job_id] = jobs.JobState(state)
                    if array_job_id == job_id:
                        array_states[job_id] = set()
            for chunk in _chunks(sorted(array_states)):
                for array_id, state in session.execute(_ARRAY_STATES, {"ids": chunk}):
                    array_states[array_id].add(state)
            for array_id, task_ids in by_array.items():
                for chunk in _chunks(sorted(task_ids)):
                    rows = session.execute(select(JobRow.array_task_id, JobRow.state).where(
                        JobRow.array_job_id == array_id, JobRow.array_task_id.in_(chunk)))
                    found.update({(array_id, task_id): jobs.JobState(state) for task_id, state in rows})
        arrays = {array_id: _array_state(seen) for array_id, seen in array_states.items()}
        return dependencies.Facts(states, arrays, found)

    def cancel_invalid_dependents(self, job_ids: Sequence[int]) -> list[int]:
        """--kill-on-invalid-dep: PENDING -> CANCELLED, reason DependencyNeverSatisfied; returns those ended."""
        now = utcnow()
        with self._session() as session:
            return list(session.scalars(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), JobRow.state == jobs.JobState.PENDING.value)
                .values(state=jobs.JobState.CANCELLED.value, reason=jobs.Reason.DEPENDENCY_NEVER.value,
                        reason_message="", end_time=now, exit_code=0, signal=0)
                .returning(JobRow.id)))


    # -- Slurm's names for jobs, and what scontrol update changes ----------------------------

    def array_task_ids(self, tasks: Iterable[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """The job ids of array tasks named ``(array job id, task index)`` (Slurm's ``40_2``); unknown ones absent."""
        wanted = sorted(set(tasks))
        found: dict[tuple[int, int], int] = {}
        with self._session() as session:
            for array_id in sorted({array for array, _ in wanted}):
                indexes = [task for array, task in wanted if array == array_id]
                for chunk in _chunks(indexes):
                    rows = session.execute(select(JobRow.array_task_id, JobRow.id).where(
                        JobRow.array_job_id == array_id, JobRow.array_task_id.in_(chunk)))
                    found.update({(array_id, task): job_id for task, job_id in rows})
        return found

    def update_pending(self, job_ids: Sequence[int], values: Mapping[str, object]) -> list[int]:
        """Change columns of PENDING jobs (scontrol update: time limit, priority, nice, comment); returns those changed."""
        with self._session() as session:
            return sorted(session.scalars(
                update(JobRow).where(JobRow.id.in_(list(job_ids)), JobRow.state == jobs.JobState.PENDING.value)
                .values(**values).returning(JobRow.id)))

    def seed_first_job_id(self, first_id: int) -> bool:
        """Make ``first_id`` the id a new (never used) database gives its first job (slurm.conf's FirstJobId).

        A database that has ever held a job keeps its numbering; returns whether the seed was set.
        """
        with translate_errors(), self._engine.begin() as connection:
            if connection.scalar(select(func.count()).select_from(_JOBS)):
                return False
            if self._engine.dialect.name == "postgresql":
                sequence = connection.scalar(text("SELECT pg_get_serial_sequence('jobs', 'id')"))
                if connection.scalar(text(f"SELECT is_called FROM {sequence}")):
                    return False
                connection.execute(text("SELECT setval(pg_get_serial_sequence('jobs', 'id'), :first, false)"),
                                   {"first": first_id})
                return True
            if connection.scalar(text("SELECT max(seq) FROM sqlite_sequence WHERE name = 'jobs'")):
                return False  # some job had an id once
            connection.execute(text("DELETE FROM sqlite_sequence WHERE name = 'jobs'"))
            connection.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', :seq)"),
                               {"seq": first_id - 1})
            return True


#: Most ids bound in one statement (SQLite allows 32,766 variables, old builds 999).
_CHUNK = 400
_NOT_OK_STATES = tuple(sorted(state.value for state in jobs.TERMINAL_STATES if state is not jobs.JobState.COMPLETED))


def _chunks(items: list) -> Iterator[list]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


#: The distinct states of each array's tasks, one index probe per state: each step asks for the
#: first state above the last one found (a loose index scan; ORDER BY ... LIMIT 1 on the
#: (array_job_id, state) index, which both PostgreSQL and SQLite take for it).
_ARRAY_STATES = text("""
    WITH RECURSIVE seen(array_id, state) AS (
        SELECT head.id, (SELECT task.state FROM jobs AS task WHERE task.array_job_id = head.id
                         ORDER BY task.state LIMIT 1)
        FROM jobs AS head WHERE head.id IN :ids
        UNION ALL
        SELECT seen.array_id, (SELECT task.state FROM jobs AS task
                               WHERE task.array_job_id = seen.array_id AND task.state > seen.state
                               ORDER BY task.state LIMIT 1)
        FROM seen WHERE seen.state IS NOT NULL
    )
    SELECT array_id, state FROM seen WHERE state IS NOT NULL
""").bindparams(bindparam("ids", expanding=True))


def _array_state(states: set[str]) -> dependencies.ArrayState:
    return dependencies.ArrayState(
        pending=jobs.JobState.PENDING.value in states, running=jobs.JobState.RUNNING.value in states,
        completed=jobs.JobState.COMPLETED.value in states, not_ok=bool(states & set(_NOT_OK_STATES)))


def _release(session: Session, job_id: int, now: datetime) -> None:
    session.execute(
        update(AllocationRow)
        .where(AllocationRow.job_id == job_id, AllocationRow.released.is_(False))
        .values(released=True, released_at=now))


def _node_from_row(row: NodeRow) -> Node:
    partitions = None if row.partitions is None else frozenset(row.partitions)
    return Node(row.ray_node_id, row.name, Resources(row.total_cpus, row.total_memory_mb, row.total_gpus),
                dict(row.labels or {}), partitions, row.alive)


def _allocated_node(allocation: AllocationRow, node: NodeRow | None) -> Node:
    """The node of an allocation row, with its capacity when the node is known under that id."""
    if node is not None and node.ray_node_id == allocation.ray_node_id:
        return _node_from_row(node)
    return Node(allocation.ray_node_id, allocation.node_name, Resources(), alive=False)


def _values_from_spec(spec: jobs.JobSpec, submit_time: datetime) -> dict:
    """The column values of a new PENDING jobs row (id and output paths come once the id is known)."""
    return dict(
        name=spec.name, account=spec.account, partition=spec.partition, user=spec.user, script=spec.script,
        argv=list(spec.argv), working_dir=spec.working_dir, environment=dict(spec.environment),
        cpus_per_task=spec.cpus_per_task, ntasks_per_node=spec.ntasks_per_node,
        memory_per_node_mb=spec.memory_per_node_mb, time_limit_s=spec.time_limit_s, priority=spec.priority,
        nice=spec.nice, requeue=spec.requeue, restart_count=0, state=jobs.JobState.PENDING.value,
        reason=jobs.Reason.NONE.value, reason_message="", submit_time=submit_time, stdout_pattern=spec.stdout_pattern,
        stderr_pattern=spec.stderr_pattern, stdout_path="", stderr_path="", hold=spec.hold,
        begin_time=spec.begin_time, dependency=spec.dependency,
        kill_on_invalid_dependency=spec.kill_on_invalid_dependency, array_job_id=spec.array_job_id,
        array_task_id=spec.array_task_id, array_max_running=spec.array_max_running, cancel_requested=False,
        nodes=spec.nodes, gpus_per_node=spec.gpus_per_node, given=sorted(spec.given), ntasks=spec.ntasks,
        memory_per_cpu_mb=spec.memory_per_cpu_mb, export=spec.export, get_user_env=spec.get_user_env,
        open_mode=spec.open_mode, warning_signal=spec.warning_signal, exclusive=spec.exclusive,
        comment=spec.comment, command=spec.command, array_spec=spec.array_spec, cluster=spec.cluster,
        submit_host=spec.submit_host, run_as=spec.run_as)


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


def _shared(text: str | None) -> str | None:
    """One copy of a text many rows repeat (the script of an array, a user, a partition): the
    scheduler holds every pending job, and 100,000 copies of one script are 100,000 strings."""
    return None if text is None else sys.intern(text)


@functools.lru_cache(maxsize=64)
def _given(names: tuple[str, ...]) -> frozenset[str]:
    """JobSpec.given, one frozenset per combination (there are few)."""
    return frozenset(names)


def job_from_row(row: JobRow) -> jobs.Job:
    """The domain view of a jobs row (every read maps rows through here)."""
    spec = jobs.JobSpec(
        script=_shared(row.script), name=_shared(row.name), account=_shared(row.account),
        partition=_shared(row.partition), user=_shared(row.user), argv=tuple(row.argv or ()),
        working_dir=_shared(row.working_dir), environment=dict(row.environment or {}),
        cpus_per_task=row.cpus_per_task, ntasks_per_node=row.ntasks_per_node,
        memory_per_node_mb=row.memory_per_node_mb, time_limit_s=row.time_limit_s, priority=row.priority,
        nice=row.nice, requeue=row.requeue, stdout_pattern=_shared(row.stdout_pattern),
        stderr_pattern=_shared(row.stderr_pattern), hold=row.hold, begin_time=_aware(row.begin_time),
        dependency=_shared(row.dependency),
        kill_on_invalid_dependency=bool(row.kill_on_invalid_dependency),
        array_job_id=row.array_job_id, array_task_id=row.array_task_id, array_max_running=row.array_max_running,
        nodes=row.nodes or 1, gpus_per_node=row.gpus_per_node or 0, given=_given(tuple(row.given or ())),
        ntasks=row.ntasks, memory_per_cpu_mb=row.memory_per_cpu_mb, export=row.export,
        get_user_env=bool(row.get_user_env), open_mode=row.open_mode, warning_signal=row.warning_signal,
        exclusive=bool(row.exclusive), comment=_shared(row.comment), command=_shared(row.command),
        array_spec=_shared(row.array_spec), cluster=_shared(row.cluster or ""),
        submit_host=_shared(row.submit_host or ""), run_as=_shared(row.run_as or ""))
    usage = jobs.Usage(row.cpu_time_user_s, row.cpu_time_system_s, row.max_rss_kb)
    if usage == jobs.NO_USAGE:  # every job not yet run
        usage = jobs.NO_USAGE
    return jobs.Job(
        id=row.id, spec=spec, state=jobs.JobState(row.state), reason=jobs.Reason(row.reason),
        reason_message=row.reason_message or "",
        submit_time=_aware(row.submit_time), start_time=_aware(row.start_time), end_time=_aware(row.end_time),
        exit_code=row.exit_code, signal=row.signal, node_name=row.node_name, node_list=row.node_list,
        stdout_path=row.stdout_path,
        stderr_path=row.stderr_path, restart_count=row.restart_count, usage=usage,
        cancel_requested=row.cancel_requested)
