"""SQLAlchemy tables: the only mapped classes.  The schema itself is owned by Alembic."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, false)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    """One batch job: what was asked, where it is, how it ended."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    account: Mapped[str] = mapped_column(String(255), default="")
    partition: Mapped[str] = mapped_column(String(255))
    user: Mapped[str] = mapped_column(String(255))
    script: Mapped[str] = mapped_column(Text)
    argv: Mapped[list] = mapped_column(JSON, default=list)
    working_dir: Mapped[str] = mapped_column(Text)
    environment: Mapped[dict] = mapped_column(JSON, default=dict)
    cpus_per_task: Mapped[int] = mapped_column(Integer)
    ntasks_per_node: Mapped[int] = mapped_column(Integer)
    memory_per_node_mb: Mapped[int] = mapped_column(BigInteger)
    time_limit_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    priority: Mapped[int] = mapped_column(BigInteger, default=0)
    nice: Mapped[int] = mapped_column(Integer, default=0)
    requeue: Mapped[bool] = mapped_column(Boolean, default=True)
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(32))
    #: Slurm's reason code (jobs.Reason): why it waits or how it ended.
    reason: Mapped[str] = mapped_column(Text, default="None")
    #: Free text about the reason (which node left, what failed to launch); "" when there is none.
    reason_message: Mapped[str] = mapped_column(Text, default="", server_default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signal: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submit_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    node_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    stdout_pattern: Mapped[str | None] = mapped_column(Text, nullable=True)
    stderr_pattern: Mapped[str | None] = mapped_column(Text, nullable=True)
    stdout_path: Mapped[str] = mapped_column(Text, default="")
    stderr_path: Mapped[str] = mapped_column(Text, default="")
    cpu_time_user_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_time_system_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_rss_kb: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: Cancel was asked while the job ran: it ends CANCELLED whatever its process reports.
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: None, "user" or "admin" (Slurm's JobHeldUser / JobHeldAdmin).
    hold: Mapped[str | None] = mapped_column(String(16), nullable=True)
    begin_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: sbatch's --dependency text, e.g. "afterok:12:13,afterany:14" or "singleton".
    dependency: Mapped[str | None] = mapped_column(Text, nullable=True)
    array_job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    array_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The %N throttle of the array: at most N of its tasks run at once.
    array_max_running: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Nodes the job needs at once (-N); cpus, memory and GPUs are per node.
    nodes: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    gpus_per_node: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Every node the job runs on, comma-separated (node_name is the first, where the script runs).
    node_list: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: --kill-on-invalid-dep: cancel the job once its dependency can never be met (else it waits).
    kill_on_invalid_dependency: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Unix account the script runs as; empty: the service's own user.
    run_as: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # sbatch's options as given (migration 0008): what the job's SLURM_* environment and scontrol show.
    #: Options whose SLURM_* variable exists only when given (jobs.GIVEN_OPTIONS), as a list.
    given: Mapped[list] = mapped_column(JSON, default=list)
    ntasks: Mapped[int | None] = mapped_column(Integer, nullable=True)
    memory_per_cpu_mb: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    export: Mapped[str | None] = mapped_column(Text, nullable=True)
    get_user_env: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    open_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: --signal as [B:]NUMBER@SECONDS.
    warning_signal: Mapped[str | None] = mapped_column(String(32), nullable=True)
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    command: Mapped[str | None] = mapped_column(Text, nullable=True)
    array_spec: Mapped[str | None] = mapped_column(Text, nullable=True)
    cluster: Mapped[str] = mapped_column(String(255), default="", server_default="")
    submit_host: Mapped[str] = mapped_column(String(255), default="", server_default="")

    # The two array indexes answer dependencies on arrays without reading every task: which
    # states an array's tasks are in (EXISTS on array_job_id, state) and one task's state.
    # (state, id): the states' counts, and the oldest pending job (smallest pending id) in one probe.
    __table_args__ = (Index("ix_jobs_state_id", "state", "id"), Index("ix_jobs_array_state", "array_job_id", "state"),
                      Index("ix_jobs_array_task", "array_job_id", "array_task_id"),
                      Index("ix_jobs_end_time", "end_time"),
                      # Ids are never reused (Slurm's job ids only grow), and FIRST_JOB_ID can seed them.
                      {"sqlite_autoincrement": True})


class AllocationRow(Base):
    """Resources a job holds on a node; unreleased rows mirror Ray's accounting (invariant 3)."""

    __tablename__ = "resource_allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Integer, ForeignKey("jobs.id", ondelete="CASCADE"))
    node_name: Mapped[str] = mapped_column(String(255))
    ray_node_id: Mapped[str] = mapped_column(String(64))
    allocated_cpus: Mapped[int] = mapped_column(Integer)
    allocated_memory_mb: Mapped[int] = mapped_column(BigInteger)
    allocated_gpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    released: Mapped[bool] = mapped_column(Boolean, default=False)
    allocated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_resource_allocations_job_id", "job_id"),
        Index("ix_resource_allocations_released", "released"),
    )


class JobTotalRow(Base):
    """Jobs and their CPU-seconds per (state, account), over every row of jobs: kept by triggers
    on jobs in the transaction of each change (migration 0010), read by /metrics."""

    __tablename__ = "job_totals"

    state: Mapped[str] = mapped_column(String(32), primary_key=True)
    account: Mapped[str] = mapped_column(String(255), primary_key=True)
    jobs: Mapped[int] = mapped_column(BigInteger)
    #: CPUs x (end_time - start_time) of the jobs with both times.
    cpu_seconds: Mapped[float] = mapped_column(Float)


class QueueEntryRow(Base):
    """The embedded queue (no REDIS_URL): an entry lives until the scheduler acknowledges it."""

    __tablename__ = "queue_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Integer)
    #: Handed to the scheduler and not yet acknowledged (a stream's pending entry).
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What the entry asks of the scheduler: "submit" (the job is new) or a control operation.
    op: Mapped[str] = mapped_column(String(16), default="submit", server_default="submit")
    arg: Mapped[str] = mapped_column(String(64), default="", server_default="")
    enqueued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_queue_entries_delivered", "delivered"),)


class NodeRow(Base):
    """A Ray node as the scheduler last saw it; lets the API check requests without Ray."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    ray_node_id: Mapped[str] = mapped_column(String(64))
    total_cpus: Mapped[int] = mapped_column(Integer)
    total_memory_mb: Mapped[int] = mapped_column(BigInteger)
    total_gpus: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    #: The partitions the node serves, as the scheduler decided from the configuration; None: every one.
    partitions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    alive: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UserRow(Base):
    """Someone who may use the API: whether an admin, and the accounts they may charge."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Accounts the user may charge; empty: only the empty (default) account.
    accounts: Mapped[list] = mapped_column(JSON, default=list)
    #: The Unix account the user's jobs run as (token create --unix-user); None: the account named like the user.
    unix_user: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TokenRow(Base):
    """An API token, stored as its SHA-256 (the token itself is shown once, at creation)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_name: Mapped[str] = mapped_column(String(255), ForeignKey("users.name", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("token_sha256", name="uq_api_tokens_token_sha256"),)
