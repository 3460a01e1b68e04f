"""JobService: submit and query jobs.  The only thing cli/ and api/ call into the core through.

Submit validates the request against the live nodes, commits the PENDING row, and only
then enqueues its id (invariant 2).  If the enqueue fails the row is removed again, so
a refused submission leaves nothing behind.
"""

from __future__ import annotations

import functools
import getpass
import logging
import os
import socket
import time
from dataclasses import replace
from typing import Sequence

from conductor import arrays, dependencies, eligibility, jobs, output, priority, queue, units
from conductor.executor import identity
from conductor import partitions as partition_config
from conductor.db import lease, listing, stats
from conductor.config import Settings
from conductor.db.repository import JobRepository
from conductor.db.session import make_engine, migrate
from conductor.auth import TokenStore
from conductor.exceptions import InvalidJobSpec, JobNotFound, ServiceUnavailable
from conductor.queue import JobQueue, make_queue
from conductor.resources import NOTHING, Node, Resources


log = logging.getLogger(__name__)
#: How long the node list that submissions are checked against is reused (see _live_nodes).
NODES_MAX_AGE_S = 1.0
#: Pooled database connections kept open.  The API serves up to 40 requests at once (anyio's
#: thread pool); with the default 5, 16 concurrent submitters opened a new PostgreSQL connection
#: for about one submit in four (each overflow connection is closed when handed back).
DB_POOL_SIZE = 16
#: How long the fair-share usage read for priority_factors is reused.
USAGE_MAX_AGE_S = 5.0


class JobService:
    """Submit and read jobs over one repository and one queue producer."""

    def __init__(self, settings: Settings, repository: JobRepository, job_queue: JobQueue) -> None:
        self._settings = settings
        self._repo = repository
        self._queue = job_queue
        self._nodes_read: tuple[float, list[Node]] | None = None  # (monotonic time, live nodes): see _live_nodes
        self._priorities = priority.PriorityModel(settings)
        self._usage_read_at: float | None = None  # monotonic time fair share was last loaded: see priority_factors

    @classmethod
    def from_settings(cls, settings: Settings, *, apply_migrations: bool = True) -> "JobService":
        """Build engine, repository and queue for ``settings`` (migrating the schema first)."""
        engine = make_engine(settings.effective_database_url, pool_size=DB_POOL_SIZE)
        if apply_migrations:
            migrate(engine)
        service = cls(settings, JobRepository(engine), make_queue(settings, engine))
        service.seed_job_ids()
        return service

    @property
    def repository(self) -> JobRepository:
        """The repository, for tests (api/ and cli/ use the methods below)."""
        return self._repo

    @property
    def job_queue(self) -> JobQueue:
        return self._queue

    def submit(self, spec: jobs.JobSpec) -> jobs.Job:
        """Validate, store as PENDING, enqueue.  Raises InvalidJobSpec naming the field."""
        spec = self._complete(spec)
        self._validate(spec)
        spec = self._with_output(spec, array=False)
        job = self._repo.add_job(spec, default_output_dir=self._output_dir())
        self._enqueue_or_forget([job.id])
        return job

    def submit_array(self, spec: jobs.JobSpec, array: arrays.ArraySpec) -> list[jobs.Job]:
        """One PENDING job per index, stored in one transaction; the first id names the array."""
        spec = replace(self._complete(spec), array_max_running=array.max_running)
        self._validate(spec)
        spec = self._with_output(spec, array=True)
        tasks = self._repo.add_array(spec, array.indexes, default_output_dir=self._output_dir())
        self._enqueue_or_forget([task.id for task in tasks])
        return tasks

    def submit_many(self, specs: Sequence[jobs.JobSpec]) -> list[jobs.Job]:
        """Submit several jobs all or nothing: validate every one, store all in one transaction, one push.

        Returns the jobs in the order given (ids ascending).  An invalid spec raises InvalidJobSpec
        with ``index`` set to its position, and nothing is stored; a refused push removes every row.
        """
        completed = []
        for index, spec in enumerate(specs):
            try:
                spec = self._complete(spec)
                self._validate(spec)
            except InvalidJobSpec as exc:
                exc.index = index  # type: ignore[attr-defined] - which item, for the caller's error
                raise
            completed.append(self._with_output(spec, array=False))
        stored = self._repo.add_jobs(completed, default_output_dir=self._output_dir())
        self._enqueue_or_forget([job.id for job in stored])
        return stored

    def _output_dir(self) -> str | None:
        return str(self._settings.job_output_dir) if self._settings.job_output_dir else None

    def _with_output(self, spec: jobs.JobSpec, *, array: bool) -> jobs.JobSpec:
        """Without -o, sbatch's default output file (JOB_OUTPUT_PATTERN; JOB_OUTPUT_DIR, when set, holds it)."""
        if spec.stdout_pattern is not None:
            return spec
        pattern = self._settings.job_array_output_pattern if array else self._settings.job_output_pattern
        output_dir = self._output_dir()
        if output_dir and not pattern.startswith("/"):
            pattern = f"{output_dir.rstrip('/')}/{pattern}"
        return replace(spec, stdout_pattern=pattern)

    def seed_job_ids(self) -> bool:
        """FIRST_JOB_ID: the first id of a new database (one that never held a job); True when it was set."""
        if self._settings.first_job_id <= 1:
            return False
        return self._repo.seed_first_job_id(self._settings.first_job_id)

    def _enqueue_or_forget(self, job_ids: list[int]) -> None:
        try:
            self._queue.push(job_ids)
        except BaseException:
            # Refused as a whole: remove the rows, unless a scheduler already started one (a
            # restarted scheduler loads PENDING rows from the database, queued or not).
            if self._repo.delete_pending_many(job_ids) == len(job_ids):
                raise
            log.error("enqueue failed but a scheduler already took jobs %s; they stay", job_ids)

    # -- control ---------------------------------------------------------------------------

    def cancel(self, job_ids: list[int], *, signal_number: int | None = None,
               expand: bool = True) -> dict[str, list[int]]:
        """scancel: PENDING jobs end CANCELLED now; RUNNING ones are terminated by the scheduler.

        With ``signal_number`` the RUNNING jobs only receive that signal and go on.  An array
        job's id stands for all its tasks (unless ``expand`` is False: ids from resolve).  Unknown ids
        raise JobNotFound.
        """
        ids = self._existing(job_ids, expand)
        if signal_number is not None:
            running = [i for i, state in self._repo.states_of(ids).items() if state is jobs.JobState.RUNNING]
            self._queue.push(running, queue.SIGNAL, str(signal_number))
            return {"cancelled": [], "signalled": sorted(running)}
        cancelled = self._repo.cancel_pending(ids)
        stopping = self._repo.request_cancel([i for i in ids if i not in set(cancelled)])
        self._queue.push(sorted(cancelled) + sorted(stopping), queue.CANCEL)
        return {"cancelled": sorted(cancelled), "signalled": sorted(stopping)}

    def hold(self, job_ids: list[int], *, admin: bool = False, expand: bool = True) -> list[int]:
        """Hold PENDING jobs (reason JobHeldUser, or JobHeldAdmin)."""
        changed = self._repo.set_hold(self._existing(job_ids, expand), "admin" if admin else "user")
        self._queue.push(changed, queue.RELOAD)
        return sorted(changed)

    def release(self, job_ids: list[int], *, expand: bool = True) -> list[int]:
        """Release held jobs."""
        changed = self._repo.set_hold(self._existing(job_ids, expand), None)
        self._queue.push(changed, queue.RELOAD)
        return sorted(changed)

    def requeue(self, job_ids: list[int], *, expand: bool = True) -> dict[str, list[int]]:
        """scontrol requeue: RUNNING jobs are stopped and go back to PENDING; ended jobs too."""
        ids = self._existing(job_ids, expand)
        running = [i for i, state in self._repo.states_of(ids).items() if state is jobs.JobState.RUNNING]
        self._queue.push(running, queue.REQUEUE)
        ended = self._repo.requeue_ended(ids)
        self._queue.push(ended)
        return {"requeued": sorted(set(running) | set(ended))}

    def resolve(self, refs: Sequence[jobs.JobRef]) -> list[int]:
        """Job ids as Slurm names them -> the jobs' ids: ``42`` (and, when 42 is an array's id, every task
        of the array), ``40_2`` (only that task).  JobNotFound names the first unknown one."""
        plain = [ref.job_id for ref in refs if ref.task_id is None]
        tasks = self._repo.array_task_ids((ref.job_id, ref.task_id) for ref in refs if ref.task_id is not None)
        for ref in refs:
            if ref.task_id is not None and (ref.job_id, ref.task_id) not in tasks:
                raise JobNotFound(ref)  # type: ignore[arg-type] - shown as 40_9
        return sorted(set(self._existing(plain)) | set(tasks.values())) if plain else sorted(set(tasks.values()))

    def get_ref(self, ref: jobs.JobRef) -> jobs.Job:
        """One job as Slurm names it: ``42`` (the job, or an array's first task) or ``40_2``."""
        if ref.task_id is None:
            return self._repo.get(ref.job_id)
        found = self._repo.array_task_ids([(ref.job_id, ref.task_id)])
        if not found:
            raise JobNotFound(ref)  # type: ignore[arg-type] - shown as 40_9
        return self._repo.get(found[(ref.job_id, ref.task_id)])

    def update_pending(self, job_ids: list[int], changes: dict[str, object]) -> list[int]:
        """scontrol update of pending jobs (time_limit_s, priority, nice, comment, name): those changed.

        Values are validated by the caller; the scheduler re-reads each changed job.
        """
        if "time_limit_s" in changes:
            for job in self._repo.get_many(job_ids):
                self._check_partition_limits(replace(job.spec, time_limit_s=changes["time_limit_s"]),
                                             self._partition(job.spec.partition))
        changed = self._repo.update_pending(job_ids, changes) if changes else []
        self._queue.push(changed, queue.RELOAD)
        return changed

    def _existing(self, job_ids: list[int], expand: bool = True) -> list[int]:
        ids = self._repo.expand_ids(job_ids) if expand else sorted(set(job_ids))
        known = self._repo.states_of(ids)
        for job_id in job_ids:
            if job_id not in known:
                raise JobNotFound(job_id)
        return sorted(known)

    def get(self, job_id: int) -> jobs.Job:
        return self._repo.get(job_id)

    def close(self) -> None:
        self._queue.close()

    def _complete(self, spec: jobs.JobSpec) -> jobs.JobSpec:
        """Fill what the request left to the site: user, default memory, partition and its DefaultTime."""
        memory_mb = spec.memory_per_node_mb or self._settings.default_mem_per_cpu_mb * spec.per_node.cpus
        name = spec.partition or partition_config.default_of(self._settings.partitions).name
        partition = self._partition(name)
        time_limit_s = spec.time_limit_s if spec.time_limit_s is not None else partition.default_time_s
        # sbatch puts its host in the job's environment; a REST client submits from here (as slurmrestd's host).
        submit_host = spec.submit_host or spec.environment.get("SLURM_SUBMIT_HOST") or _submit_host()
        return replace(spec, user=spec.user or getpass.getuser(), memory_per_node_mb=memory_mb,
                       partition=name, name=spec.name or jobs.DEFAULT_JOB_NAME, time_limit_s=time_limit_s,
                       cluster=spec.cluster or self._settings.cluster_name, submit_host=submit_host)

    def _partition(self, name: str) -> partition_config.Partition:
        found = partition_config.lookup(self._settings.partitions, name)
        if found is None:
            known = ", ".join(sorted(p.name for p in self._settings.partitions))
            raise InvalidJobSpec("partition", f"{name!r} is not a partition (known: {known})")
        return found

    def _validate(self, spec: jobs.JobSpec) -> None:
        _check_script(spec.script, self._settings.max_script_bytes)
        if spec.cpus_per_task < 1:
            raise InvalidJobSpec("cpus_per_task", "must be at least 1")
        if spec.ntasks_per_node < 1:
            raise InvalidJobSpec("ntasks_per_node", "must be at least 1")
        if spec.memory_per_node_mb < 0:
            raise InvalidJobSpec("memory_per_node", "must not be negative")
        if spec.time_limit_s is not None and spec.time_limit_s < 0:
            raise InvalidJobSpec("time_limit", "must not be negative")
        if spec.nodes < 1:
            raise InvalidJobSpec("nodes", "must be at least 1")
        if spec.gpus_per_node < 0:
            raise InvalidJobSpec("gpus_per_node", "must not be negative")
        self._check_partition_limits(spec, self._partition(spec.partition))
        if not os.path.isabs(spec.working_dir):
            raise InvalidJobSpec("current_working_directory", f"{spec.working_dir!r} is not an absolute path")
        self._check_user_may_enter(spec)
        self._check_dependency(spec.dependency)
        _check_sbatch_options(spec)
        self._check_paths(spec)
        self._check_fits_a_node(spec)

    def _check_paths(self, spec: jobs.JobSpec) -> None:
        """Working directory and output files must lie in ALLOWED_DIRS, when it is set."""
        allowed = self._settings.allowed_dirs
        if not allowed:
            return
        for field, pattern in (("current_working_directory", "."), ("standard_output", spec.stdout_pattern),
                               ("standard_error", spec.stderr_pattern)):
            if pattern is None:
                continue
            path = os.path.normpath(os.path.join(spec.working_dir, jobs.expand_output_pattern(
                pattern, job_id=0, name="x", user="x")))
            if not any(path == str(d) or path.startswith(str(d).rstrip("/") + "/") for d in allowed):
                raise InvalidJobSpec(field, f"{path} is outside the allowed directories "
                                            f"({', '.join(str(d) for d in allowed)})")

    @staticmethod
    def _check_user_may_enter(spec: jobs.JobSpec) -> None:
        """The Unix account a job runs as must be able to enter its working directory (judged on this host)."""
        if not spec.run_as:
            return
        try:
            who = identity.unix_identity(spec.run_as)
        except KeyError:  # no account here: the job's node refuses it at launch, naming node and user
            return
        if not identity.may_enter(who, spec.working_dir):
            raise InvalidJobSpec("current_working_directory",
                                 f"{spec.working_dir} is not a directory that {who.name} may enter")

    def _live_nodes(self) -> list[Node]:
        """The live nodes, read at most once per NODES_MAX_AGE_S while some are known.

        Nodes change when one joins or leaves, not per submission; reading them for every job cost a
        database round trip per submit (and per item of a batch).  An empty list is never reused, so
        the first nodes a scheduler reports are seen at once.
        """
        now = time.monotonic()
        read = self._nodes_read
        if read is not None and now - read[0] < NODES_MAX_AGE_S:
            return read[1]
        nodes = self._repo.nodes()
        self._nodes_read = (now, nodes) if nodes else None
        return nodes

    def _check_dependency(self, text: str | None) -> None:
        if not text:
            return
        try:
            parsed = dependencies.parse(text)
        except ValueError as exc:
            raise InvalidJobSpec("dependency", str(exc)) from None
        missing = dependencies.first_missing(parsed, eligibility.facts_for([(parsed, None)], self._repo))
        if missing is not None:
            raise InvalidJobSpec("dependency", f"job {missing} does not exist")

    @staticmethod
    def _check_partition_limits(spec: jobs.JobSpec, partition: partition_config.Partition) -> None:
        """The partition's MaxTime, MaxCPUsPerJob and MaxNodes (Slurm's EnforcePartLimits=ALL)."""
        where = f"partition {partition.name}"
        if partition.max_time_s is not None and (spec.time_limit_s is None or spec.time_limit_s > partition.max_time_s):
            asked = units.format_duration_s(spec.time_limit_s)
            raise InvalidJobSpec("time_limit", f"{asked} exceeds the MaxTime of {where}, "
                                               f"{units.format_duration_s(partition.max_time_s)}")
        total_cpus = spec.total.cpus
        if partition.max_cpus_per_job is not None and total_cpus > partition.max_cpus_per_job:
            raise InvalidJobSpec("cpus_per_task", f"the job needs {total_cpus} CPUs; {where} allows "
                                                  f"{partition.max_cpus_per_job} per job (MaxCPUsPerJob)")
        if partition.max_nodes is not None and spec.nodes > partition.max_nodes:
            raise InvalidJobSpec("nodes", f"the job needs {spec.nodes} nodes; {where} allows {partition.max_nodes} "
                                          "(MaxNodes)")

    def _check_fits_a_node(self, spec: jobs.JobSpec) -> None:
        """Refuse a job that no live nodes of its partition could ever hold (CPUs, memory, GPUs, node count)."""
        nodes = self._live_nodes()
        if not nodes:  # no scheduler has reported nodes yet: it will hold what cannot run
            return
        partition = self._partition(spec.partition)
        nodes = [n for n in nodes if partition.covers(n.name, n.labels)]
        if not nodes:  # its nodes may join later (ray up, a restarted node): the job waits for them
            return
        need = spec.per_node
        holders = [n for n in nodes if need.fits_in(n.capacity)]
        if len(holders) >= spec.nodes:
            return
        if holders or spec.nodes > len(nodes):
            raise InvalidJobSpec("nodes", f"the job needs {spec.nodes} nodes that can each hold it; partition "
                                          f"{partition.name} has {len(holders)} of {len(nodes)} live nodes that can")
        largest_gpus = max(node.capacity.gpus for node in nodes)
        if need.gpus > largest_gpus:
            raise InvalidJobSpec("gpus_per_node", f"the job needs {need.gpus} GPUs per node but the "
                                                  f"largest node of partition {partition.name} has {largest_gpus}")
        largest_cpus = max(node.capacity.cpus for node in nodes)
        if need.cpus > largest_cpus:
            raise InvalidJobSpec(
                "cpus_per_task",
                f"the job needs {need.cpus} CPUs (cpus_per_task {spec.cpus_per_task} x ntasks_per_node "
                f"{spec.ntasks_per_node}) but the largest node has {largest_cpus}")
        largest_mb = max(node.capacity.memory_mb for node in nodes if node.capacity.cpus >= need.cpus)
        raise InvalidJobSpec(
            "memory_per_node",
            f"the job needs {need.memory_mb} MB but the largest node with {need.cpus} CPUs has {largest_mb} MB")

    def priority_factors(self, found: Sequence[jobs.Job]) -> dict[int, dict]:
        """sprio: each PENDING job's priority now and its factors, computed as the scheduler does.

        Fair share comes from the database's usage records, read at most once per
        USAGE_MAX_AGE_S (the scheduler recomputes priorities every few seconds too).
        """
        pending = [job for job in found if job.state is jobs.JobState.PENDING]
        if not pending:
            return {}
        now_s = time.time()
        cluster_cpus = self._priority_inputs(now_s)
        return {job.id: self._priorities.factors(job, cluster_cpus=cluster_cpus, now_s=now_s).as_dict()
                for job in pending}

    def slurm_priorities(self, found: Sequence[jobs.Job]) -> dict[int, int]:
        """Each job's priority as Slurm reports it: 0 while held (Slurm's meaning of 0); a pending job's
        as the scheduler computes it now (sprio's); a job that started, or ended without starting, as
        computed at that moment, since Slurm stops recomputing it then.  At least 1 otherwise, as in
        Slurm, where a computed priority below 1 becomes 1."""
        if not found:
            return {}
        now_s = time.time()
        cluster_cpus = self._priority_inputs(now_s)
        result = {}
        for job in found:
            if job.spec.hold is not None:
                result[job.id] = 0
                continue
            moment = job.start_time or (job.end_time if job.state is not jobs.JobState.PENDING else None)
            at_s = moment.timestamp() if moment is not None else now_s
            result[job.id] = max(1, self._priorities.factors(job, cluster_cpus=cluster_cpus, now_s=at_s).priority)
        return result

    def _priority_inputs(self, now_s: float) -> int:
        """Fair share loaded (at most once per USAGE_MAX_AGE_S); the live cluster's CPUs."""
        if self._usage_read_at is None or time.monotonic() - self._usage_read_at >= USAGE_MAX_AGE_S:
            self._priorities.load_usage(self._repo.usage_records(self._priorities.usage_window_start(now_s)), now_s)
            self._usage_read_at = time.monotonic()
        return sum(node.capacity.cpus for node in self._live_nodes())

    def nodes(self) -> list[tuple[Node, Resources]]:
        """Every node the scheduler has seen (alive or not), with what allocations hold on it now."""
        used = self._repo.unreleased_by_node()
        return [(node, used.get(node.ray_node_id, NOTHING)) for node in self._repo.nodes(alive_only=False)]

    def queue_summary(self) -> list[tuple[str, jobs.Reason, str, int, int]]:
        """(state, reason, partition, jobs, CPUs over all their nodes) of pending and running jobs."""
        return self._repo.active_summary()

    def totals(self) -> stats.Totals:
        """Jobs submitted, ended by state, and CPU-seconds per account (one aggregate query: /metrics)."""
        return stats.JobStats(self._repo.engine).totals()

    def oldest_pending(self) -> stats.OldestPending | None:
        return stats.JobStats(self._repo.engine).oldest_pending()

    def lease_holder(self) -> lease.Holder:
        """Who holds the scheduler lease of this database (``conductor status``)."""
        return lease.holder(self._repo.engine)

    def dependency_states(self, found: Sequence[jobs.Job]) -> dict[int, str]:
        """Each waiting job's dependency as Slurm shows it (``afterok:40_*(unfulfilled)``); one read."""
        return eligibility.describe(found, self._repo)

    def list_jobs(self, job_filter: listing.JobFilter, *, cursor: int | None = None,
                  limit: int = 100) -> tuple[list[jobs.Job], int | None]:
        """Jobs matching ``job_filter`` in id order after ``cursor``: (jobs, next cursor or None)."""

        page = listing.JobListing(self._repo.engine).page(job_filter, cursor=cursor, limit=limit)
        return page.jobs, page.next_cursor

    def read_output(self, job_id: int, stream: str = "stdout", *, offset: int = 0,
                    limit_bytes: int = 1024 * 1024, tail_bytes: int | None = None) -> output.OutputChunk:
        """A byte range of the job's stdout or stderr file, read on this host.

        The job is read first (JobNotFound for an unknown id), then the file.  A job that
        never started, or whose file does not exist (yet), reads as empty with size 0.  The
        file is read where the service runs: jobs of other nodes need a shared output
        directory.  ``stderr`` of a job without ``-e`` is the same file as its stdout.
        """

        if stream not in output.STREAMS:
            raise ValueError(f"stream must be one of {output.STREAMS}, not {stream!r}")
        job = self._repo.get(job_id)
        if job.state is jobs.JobState.PENDING and job.restart_count == 0:
            return output.OutputChunk(job, b"", 0, 0)  # whatever the path holds is not its output yet
        path = job.stdout_path if stream == "stdout" else job.stderr_path
        data, start, size = output.read_range(path, offset=offset, limit_bytes=limit_bytes, tail_bytes=tail_bytes,
                                              owner_uid=output.owner_uid(job))
        return output.OutputChunk(job, data, start, size)

    # -- for the API's health, Slurm and authentication layers (public, so they need not reach
    # -- into the repository or the queue)

    def ping(self) -> dict[str, ServiceUnavailable | None]:
        """Whether the database and the queue answer: ``{"database": None, "queue": QueueUnavailable(...)}``.

        Each component maps to None when it answers, else to the ServiceUnavailable that says why.
        Both are asked, whatever the first answers.
        """
        components: dict[str, ServiceUnavailable | None] = {}
        for name, check in (("database", self._repo.ping), ("queue", self._queue.ping)):
            try:
                check()
                components[name] = None
            except ServiceUnavailable as exc:
                components[name] = exc
        return components

    def jobs_named(self, ref: jobs.JobRef) -> list[jobs.Job]:
        """The jobs a Slurm job id names, in id order: ``42`` (the job; for an array's id, all its
        tasks) or ``40_2`` (task 2 of array 40).  Raises JobNotFound for either that is not a job."""
        return sorted(self._repo.get_many(self.resolve([ref])), key=lambda job: job.id)

    def token_store(self) -> TokenStore:
        """The API tokens, stored in this service's database."""
        return TokenStore(self._repo.engine)


#: sbatch's refusal of a script without an interpreter line (its three lines, as one).
NOT_A_BATCH_SCRIPT = ("This does not look like a batch script.  The first line must start with #! followed by "
                      "the path to an interpreter.  For instance: #!/bin/sh")


@functools.lru_cache(maxsize=1)
def _submit_host() -> str:
    """This host's short name (read once per process)."""
    return socket.gethostname().split(".")[0]


def _check_sbatch_options(spec: jobs.JobSpec) -> None:
    """--open-mode, --signal and the texts sbatch keeps as given."""
    if spec.open_mode is not None and spec.open_mode not in jobs.OPEN_MODES:
        raise InvalidJobSpec("open_mode", f"{spec.open_mode!r}: use append or truncate")
    if spec.warning_signal is not None:
        try:
            jobs.parse_warning_signal(spec.warning_signal)
        except ValueError as exc:
            raise InvalidJobSpec("signal", str(exc)) from None
    for field, value in (("comment", spec.comment), ("command", spec.command), ("export", spec.export)):
        if value is not None and "\x00" in value:
            raise InvalidJobSpec(field, "must not contain NUL bytes")


def _check_script(script: str, max_bytes: int) -> None:
    if not script.strip():
        raise InvalidJobSpec("script", "must not be empty")
    size = len(script.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise InvalidJobSpec("script", f"is {size} bytes; the limit is {max_bytes}")
    if not script.startswith("#!"):
        raise InvalidJobSpec("script", NOT_A_BATCH_SCRIPT)
    if "\x00" in script:
        raise InvalidJobSpec("script", "must not contain NUL bytes")
