"""JobService: submit and query jobs.  The only thing cli/ and api/ call into the core through.

Submit validates the request against the live nodes, commits the PENDING row, and only
then enqueues its id (invariant 2).  If the enqueue fails the row is removed again, so
a refused submission leaves nothing behind.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import replace

from conductor import jobs
from conductor.config import Settings
from conductor.db.repository import JobRepository
from conductor.db.session import make_engine, migrate
from conductor.exceptions import InvalidJobSpec
from conductor.queue import JobQueue, make_queue


class JobService:
    """Submit and read jobs over one repository and one queue producer."""

    def __init__(self, settings: Settings, repository: JobRepository, job_queue: JobQueue) -> None:
        self._settings = settings
        self._repo = repository
        self._queue = job_queue

    @classmethod
    def from_settings(cls, settings: Settings, *, apply_migrations: bool = True) -> "JobService":
        """Build engine, repository and queue for ``settings`` (migrating the schema first)."""
        engine = make_engine(settings.effective_database_url)
        if apply_migrations:
            migrate(engine)
        return cls(settings, JobRepository(engine), make_queue(settings, engine))

    @property
    def repository(self) -> JobRepository:
        return self._repo

    @property
    def job_queue(self) -> JobQueue:
        return self._queue

    def submit(self, spec: jobs.JobSpec) -> jobs.Job:
        """Validate, store as PENDING, enqueue.  Raises InvalidJobSpec naming the field."""
        spec = self._complete(spec)
        self._validate(spec)
        output_dir = str(self._settings.job_output_dir) if self._settings.job_output_dir else None
        job = self._repo.add_job(spec, default_output_dir=output_dir)
        try:
            self._queue.push([job.id])
        except BaseException:
            # Refused as a whole: remove the row, unless a scheduler already started it (a
            # restarted scheduler loads PENDING rows from the database, queued or not).
            if self._repo.delete_pending(job.id):
                raise
        return job

    def get(self, job_id: int) -> jobs.Job:
        return self._repo.get(job_id)

    def close(self) -> None:
        self._queue.close()

    def _complete(self, spec: jobs.JobSpec) -> jobs.JobSpec:
        """Fill what the request left to the site: user, default memory."""
        memory_mb = spec.memory_per_node_mb or self._settings.default_mem_per_cpu_mb * spec.total_cpus
        return replace(spec, user=spec.user or getpass.getuser(), memory_per_node_mb=memory_mb,
                       partition=spec.partition or jobs.DEFAULT_PARTITION, name=spec.name or jobs.DEFAULT_JOB_NAME)

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
        if not os.path.isabs(spec.working_dir):
            raise InvalidJobSpec("current_working_directory", f"{spec.working_dir!r} is not an absolute path")
        self._check_fits_a_node(spec)

    def _check_fits_a_node(self, spec: jobs.JobSpec) -> None:
        """Refuse a job that no single live node could ever hold (CPUs and memory together)."""
        nodes = self._repo.nodes()
        if not nodes:  # no scheduler has reported nodes yet: it will hold what cannot run
            return
        if any(n.total_cpus >= spec.total_cpus and n.total_memory_mb >= spec.memory_per_node_mb for n in nodes):
            return
        largest_cpus = max(node.total_cpus for node in nodes)
        if spec.total_cpus > largest_cpus:
            raise InvalidJobSpec(
                "cpus_per_task",
                f"the job needs {spec.total_cpus} CPUs (cpus_per_task {spec.cpus_per_task} x ntasks_per_node "
                f"{spec.ntasks_per_node}) but the largest node has {largest_cpus}")
        largest_mb = max(node.total_memory_mb for node in nodes if node.total_cpus >= spec.total_cpus)
        raise InvalidJobSpec(
            "memory_per_node",
            f"the job needs {spec.memory_per_node_mb} MB but the largest node with {spec.total_cpus} CPUs "
            f"has {largest_mb} MB")


def _check_script(script: str, max_bytes: int) -> None:
    if not script.strip():
        raise InvalidJobSpec("script", "must not be empty")
    size = len(script.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise InvalidJobSpec("script", f"is {size} bytes; the limit is {max_bytes}")
    if "\x00" in script:
        raise InvalidJobSpec("script", "must not contain NUL bytes")
