"""How squeue, sacct and scontrol print jobs, for API job objects (dicts).  Pure but for print_table.

Times are shown in local time without a zone (``2026-11-28T10:00:05``), as Slurm shows them.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from conductor import units
from conductor.jobs import JobState

Job = dict[str, Any]
UNKNOWN = "Unknown"

QUEUE_HEADERS = ("JOBID", "PARTITION", "NAME", "USER", "ACCOUNT", "ST", "TIME", "CPUS", "PRIORITY", "NODE(REASON)")
QUEUE_RIGHT = frozenset({"JOBID", "TIME", "CPUS", "PRIORITY"})
#: ``queue --dependency``: squeue's %E as a last column.
QUEUE_DEPENDENCY_HEADERS = (*QUEUE_HEADERS, "DEPENDENCY")
PARTITION_HEADERS = ("PARTITION", "AVAIL", "TIMELIMIT", "NODES", "CPUS(A/I/T)", "MEMORY(A/T)", "GPUS", "JOBS(R/PD)",
                     "NODELIST")
PARTITION_RIGHT = frozenset({"NODES", "GPUS"})
HISTORY_HEADERS = ("JobID", "JobName", "Partition", "Account", "AllocCPUS", "State", "ExitCode", "Start", "End",
                   "Elapsed", "CPUTime", "TotalCPU", "MaxRSS")
HISTORY_RIGHT = frozenset({"JobID", "AllocCPUS", "ExitCode", "Elapsed", "CPUTime", "TotalCPU", "MaxRSS"})
#: States for which squeue's NODELIST(REASON) shows "(Reason)" rather than the node.
_REASON_STATES = frozenset({"PENDING", "FAILED", "TIMEOUT", "OUT_OF_MEMORY"})
_SHORT = {state.value: state.short for state in JobState}
#: API fields show_fields prints under Slurm's names; any other field is printed after them.
_SHOWN = frozenset({
    "job_id", "display_id", "name", "user", "account", "priority", "nice", "state", "reason", "requeue",
    "restart_count", "exit_code", "return_code", "signal", "time_limit_s", "submit_time", "start_time", "end_time",
    "partition", "node", "cpus", "ntasks_per_node", "cpus_per_task", "memory_per_node_mb", "working_directory",
    "stderr_path", "stdout_path", "cpu_time_user_s", "cpu_time_system_s", "max_rss_kb", "nodes", "gpus_per_node",
    "node_list", "priority_factors", "dependency", "dependency_state"})


# -- quantities ---------------------------------------------------------------------------

def squeue_time(seconds: float) -> str:
    """squeue's TIME: ``m:ss``, ``h:mm:ss`` or ``d-hh:mm:ss`` (0 -> ``0:00``)."""
    days, rest = divmod(max(0, int(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def sacct_elapsed(seconds: float | None) -> str:
    """sacct's Elapsed: ``hh:mm:ss`` or ``d-hh:mm:ss``; a job that never ran has 00:00:00."""
    return units.format_duration_s(max(0, seconds or 0))


def sacct_cpu_time(seconds: float | None) -> str:
    """sacct's TotalCPU: ``mm:ss.mmm`` under an hour, else ``hh:mm:ss`` / ``d-hh:mm:ss``; blank if unknown."""
    if seconds is None:
        return ""
    if seconds >= 3600:
        return units.format_duration_s(seconds)
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{secs:06.3f}"


def max_rss(kilobytes: int | None) -> str:
    """sacct's MaxRSS: kilobytes with a K (``204800K``); blank if unknown."""
    return "" if kilobytes is None else f"{kilobytes}K"


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp (ISO 8601, UTC) as an aware datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def local_time(value: str | datetime | None) -> str:
    """``2026-11-28T10:00:05`` in local time, or Unknown."""
    moment = parse_time(value) if isinstance(value, str) or value is None else value
    return moment.astimezone().strftime("%Y-%m-%dT%H:%M:%S") if moment else UNKNOWN


def elapsed_s(job: Job, now: datetime) -> float:
    """Seconds the job has run: to its end, or to ``now`` while it runs; 0 before it starts."""
    start = parse_time(job.get("start_time"))
    if start is None:
        return 0.0
    end = parse_time(job.get("end_time")) or now
    return max(0.0, (end - start).total_seconds())


def total_cpu_s(job: Job) -> float | None:
    """User plus system CPU seconds, when recorded."""
    user, system = job.get("cpu_time_user_s"), job.get("cpu_time_system_s")
    if user is None and system is None:
        return None
    return (user or 0.0) + (system or 0.0)


# -- rows ---------------------------------------------------------------------------------

def job_label(job: Job) -> str:
    """The id as squeue and sacct print it: ``42``, or ``40_2`` for task 2 of array job 40."""
    return str(job.get("display_id") or job["job_id"])


def node_or_reason(job: Job) -> str:
    """squeue's NODELIST(REASON): the node, or ``(Reason)`` for pending and failed jobs."""
    if job["state"] in _REASON_STATES:
        return f"({job['reason']})"
    return job.get("node") or ""


def queue_row(job: Job, now: datetime) -> list[str]:
    """One squeue line; PRIORITY is a pending job's current priority (squeue -o %Q), "-" for others."""
    return [job_label(job), job["partition"], job["name"], job["user"], job["account"],
            _SHORT.get(job["state"], job["state"]), squeue_time(elapsed_s(job, now)),
            str(job["cpus"]), current_priority(job), node_or_reason(job)]


def queue_row_with_dependency(job: Job, now: datetime) -> list[str]:
    """A queue line plus squeue's %E: what is left of the dependency, ``afterok:40_*(unfulfilled)``."""
    return [*queue_row(job, now), dependency(job)]


def dependency(job: Job) -> str:
    """The dependency as scontrol and squeue print it: the unfulfilled rest, or ``(null)`` (none, or met)."""
    return job.get("dependency_state") or "(null)"


def current_priority(job: Job) -> str:
    """The priority the scheduler orders a pending job by; "-" once it left the queue."""
    factors = job.get("priority_factors")
    return str(factors["priority"]) if factors else "-"


def node_list(job: Job) -> str:
    return job.get("node_list") or job.get("node") or "(null)"


def partition_row(partition: dict) -> list[str]:
    """One sinfo line: the default partition is marked with *, as sinfo does."""
    cpus, memory = partition["cpus"], partition["memory_mb"]
    return [partition["name"] + ("*" if partition.get("default") else ""), partition["state"],
            units.format_duration_s(partition.get("max_time_s")), str(len(partition["nodes"])),
            f"{cpus['allocated']}/{cpus['free']}/{cpus['total']}",
            f"{units.format_memory_mb(memory['allocated'])}/{units.format_memory_mb(memory['total'])}",
            str(partition.get("gpus", 0)), f"{partition['running_jobs']}/{partition['pending_jobs']}",
            ",".join(partition["nodes"]) or "(none)"]


def history_row(job: Job, now: datetime) -> list[str]:
    """One sacct line (CPUTime is Elapsed x AllocCPUS, TotalCPU is user + system, as in sacct)."""
    elapsed = elapsed_s(job, now)
    return [job_label(job), job["name"], job["partition"], job["account"], str(job["cpus"]), job["state"],
            job["exit_code"], local_time(job.get("start_time")), local_time(job.get("end_time")),
            sacct_elapsed(elapsed), sacct_elapsed(elapsed * job["cpus"]), sacct_cpu_time(total_cpu_s(job)),
            max_rss(job.get("max_rss_kb"))]


def show_fields(job: Job, now: datetime) -> list[list[tuple[str, str]]]:
    """scontrol show job's Key=Value pairs, grouped as scontrol prints them, one group a line."""
    return [
        [("JobId", str(job["job_id"])), ("JobName", job["name"])],
        [("UserId", job["user"]), ("Account", job["account"])],
        [("Priority", current_priority(job) if job.get("priority_factors") else str(job["priority"])),
         ("Nice", str(job["nice"])), ("AdminPriority", str(job["priority"]))],
        *([_factor_fields(job["priority_factors"])] if job.get("priority_factors") else []),
        [("JobState", job["state"]), ("Reason", job["reason"]), ("Dependency", dependency(job))],
        [("Requeue", "1" if job["requeue"] else "0"), ("Restarts", str(job["restart_count"])),
         ("ExitCode", job["exit_code"])],
        [("RunTime", sacct_elapsed(elapsed_s(job, now))),
         ("TimeLimit", units.format_duration_s(job.get("time_limit_s")))],
        [("SubmitTime", local_time(job["submit_time"])), ("StartTime", local_time(job.get("start_time"))),
         ("EndTime", _end_time(job))],
        [("Partition", job["partition"]), ("NodeList", node_list(job)),
         ("BatchHost", job.get("node") or "(null)")],
        [("NumNodes", str(job.get("nodes", 1))), ("NumCPUs", str(job["cpus"])),
         ("NumTasks", str(job["ntasks_per_node"] * job.get("nodes", 1))), ("CPUs/Task", str(job["cpus_per_task"])),
         ("Gres", f"gpu:{job['gpus_per_node']}" if job.get("gpus_per_node") else "(null)")],
        [("MinMemoryNode", units.format_memory_mb(job["memory_per_node_mb"]))],
        [("WorkDir", job["working_directory"])],
        [("StdErr", job["stderr_path"])],
        [("StdOut", job["stdout_path"])],
        [("UserCPU", sacct_cpu_time(job.get("cpu_time_user_s"))),
         ("SystemCPU", sacct_cpu_time(job.get("cpu_time_system_s"))), ("TotalCPU", sacct_cpu_time(total_cpu_s(job))),
         ("MaxRSS", max_rss(job.get("max_rss_kb")))],
    ] + ([_other_fields(job)] if _other_fields(job) else [])


def _factor_fields(factors: dict) -> list[tuple[str, str]]:
    """sprio's factors of a pending job, as shown under its priority."""
    return [("PriorityFactors", f"Age={factors['age']}"), ("FairShare", str(factors["fairshare"])),
            ("JobSize", str(factors["job_size"])), ("PartitionFactor", str(factors["partition"]))]


def _other_fields(job: Job) -> list[tuple[str, str]]:
    """Fields without a Slurm name above, as CamelCase=value (None as scontrol's ``(null)``)."""
    pairs = []
    for key, value in job.items():
        if key in _SHOWN:
            continue
        name = "".join(part.capitalize() for part in key.split("_"))
        text = "(null)" if value is None else ("1" if value else "0") if isinstance(value, bool) else str(value)
        pairs.append((name, local_time(text) if key.endswith("_time") and value else text))
    return pairs


def _end_time(job: Job) -> str:
    """The end; for a running job with a limit, the expected end (as scontrol shows it)."""
    if job.get("end_time"):
        return local_time(job["end_time"])
    start, limit_s = parse_time(job.get("start_time")), job.get("time_limit_s")
    if job["state"] == "RUNNING" and start and limit_s:
        return local_time(start + timedelta(seconds=limit_s))
    return UNKNOWN


def show_text(job: Job, now: datetime, *, one_line: bool = False) -> str:
    """scontrol's layout: the first group, then each group indented three spaces (or all on one line)."""
    lines = [" ".join(f"{key}={value}" for key, value in group) for group in show_fields(job, now)]
    return " ".join(lines) if one_line else "\n   ".join(lines)


# -- tables -------------------------------------------------------------------------------

def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[str] = frozenset(),
                header: bool = True, widths: Sequence[int] | None = None) -> str:
    """Aligned columns separated by one space, no colour: stable for scripts (awk, cut).

    ``widths``: the columns' widths, kept from an earlier page of the same listing (a wider cell
    still prints whole); by default they fit ``rows``.
    """
    widths = widths or column_widths(headers, rows)
    lines = [headers] if header else []
    lines += rows
    return "\n".join(" ".join(cell.rjust(width) if title in right else cell.ljust(width)
                               for cell, width, title in zip(line, widths, headers)).rstrip()
                      for line in lines)


def column_widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(title)] + [len(row[i]) for row in rows]) for i, title in enumerate(headers)]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[str] = frozenset(),
                header: bool = True) -> None:
    """A rich table on a terminal; plain aligned columns when stdout is a pipe or a file."""
    if not sys.stdout.isatty():
        text = plain_table(headers, rows, right=right, header=header)
        if text:
            print(text)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # plain Text: a job name like "[x]" is not markup

    table = Table(box=box.SIMPLE_HEAD, show_header=header, header_style="bold", pad_edge=False)
    for title in headers:
        table.add_column(title, justify="right" if title in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    Console().print(table)
