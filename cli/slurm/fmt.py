"""Slurm's output formats for API job objects: squeue's ``%`` fields and ``-O`` names, the values they
print, and the column layout (``%[.]size``, ``Name:[.]size``).  Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from cli import render
from cli.slurm.common import SLURM_STATES, CommandError
from conductor import units

Job = dict[str, Any]

#: States for which squeue's %R shows "(Reason)" rather than the nodes.
_REASON_STATES = frozenset({"PENDING", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"})


def job_id(job: Job) -> str:
    """squeue's %i / scontrol's display: ``42`` or ``40_2``."""
    return render.job_label(job)


def limit_text(seconds: int | None) -> str:
    """squeue's %l: ``5:00``, ``1:00:00``, ``1-00:00:00``; ``UNLIMITED``."""
    return "UNLIMITED" if seconds is None else render.squeue_time(seconds)


def time_left(job: Job, at: datetime) -> str:
    limit = job.get("time_limit_s")
    if limit is None:
        return "UNLIMITED"
    return render.squeue_time(max(0, limit - render.elapsed_s(job, at)))


def slurm_time(value: str | None, missing: str = "N/A") -> str:
    """``2026-11-28T10:00:05`` in local time, or ``missing``."""
    return render.local_time(value) if value else missing


def end_time(job: Job, missing: str = "N/A") -> str:
    """The end; for a running job with a limit, its expected end (as squeue and scontrol show it)."""
    if job.get("end_time"):
        return render.local_time(job["end_time"])
    start, limit = render.parse_time(job.get("start_time")), job.get("time_limit_s")
    if job["state"] == "RUNNING" and start and limit:
        return render.local_time(start + timedelta(seconds=limit))
    return "NONE" if job["state"] == "RUNNING" else missing


def node_list(job: Job) -> str:
    """The nodes as a hostlist (``n[1-2]``), empty while pending."""
    from conductor import hostlist

    names = (job.get("node_list") or job.get("node") or "").split(",")
    return hostlist.compress(name for name in names if name) if job["state"] != "PENDING" else ""


def nodes_or_reason(job: Job) -> str:
    if job["state"] in _REASON_STATES:
        return f"({job['reason']})"
    return node_list(job)


def priority(job: Job) -> int:
    """The priority the scheduler orders a pending job by (0 while held, as Slurm shows it)."""
    if job.get("hold"):
        return 0
    factors = job.get("priority_factors")
    return int(factors["priority"]) if factors else int(job.get("priority") or 0)


def min_memory(job: Job) -> str:
    return units.format_memory_mb(job["memory_per_node_mb"]) if job["memory_per_node_mb"] else "0"


def array_job_id(job: Job) -> str:
    return str(job["array_job_id"] if job.get("array_job_id") is not None else job["job_id"])


def array_task_id(job: Job) -> str:
    return str(job["array_task_id"]) if job.get("array_task_id") is not None else "N/A"


def _null(value: object) -> str:
    return "(null)" if value in (None, "") else str(value)


def _reason(job: Job) -> str:
    return str(job["reason"])


#: squeue's %-codes: (header, value of a job at a moment).
SQUEUE_CODES: dict[str, tuple[str, Callable[[Job, datetime], str]]] = {
    "i": ("JOBID", lambda j, t: job_id(j)),
    "A": ("JOBID", lambda j, t: str(j["job_id"])),
    "F": ("ARRAY_JOB_ID", lambda j, t: array_job_id(j)),
    "K": ("ARRAY_TASK_ID", lambda j, t: array_task_id(j)),
    "j": ("NAME", lambda j, t: j["name"]),
    "u": ("USER", lambda j, t: j["user"]),
    "U": ("UID", lambda j, t: _uid(j["user"])),
    "T": ("STATE", lambda j, t: j["state"]),
    "t": ("ST", lambda j, t: SLURM_STATES.get(j["state"], j["state"])),
    "M": ("TIME", lambda j, t: render.squeue_time(render.elapsed_s(j, t))),
    "l": ("TIME_LIMIT", lambda j, t: limit_text(j.get("time_limit_s"))),
    "L": ("TIME_LEFT", time_left),
    "D": ("NODES", lambda j, t: str(j.get("nodes", 1))),
    "C": ("CPUS", lambda j, t: str(j["cpus"])),
    "c": ("MIN_CPUS", lambda j, t: str(j["cpus_per_task"] * j["ntasks_per_node"])),
    "R": ("NODELIST(REASON)", lambda j, t: nodes_or_reason(j)),
    "r": ("REASON", lambda j, t: _reason(j)),
    "P": ("PARTITION", lambda j, t: j["partition"]),
    "a": ("ACCOUNT", lambda j, t: _null(j["account"])),
    "q": ("QOS", lambda j, t: "normal"),
    "m": ("MIN_MEMORY", lambda j, t: min_memory(j)),
    "N": ("NODELIST", lambda j, t: node_list(j)),
    "n": ("REQ_NODES", lambda j, t: ""),
    "x": ("EXC_NODES", lambda j, t: ""),
    "S": ("START_TIME", lambda j, t: slurm_time(j.get("start_time"))),
    "e": ("END_TIME", lambda j, t: end_time(j)),
    "V": ("SUBMIT_TIME", lambda j, t: slurm_time(j.get("submit_time"))),
    "Q": ("PRIORITY", lambda j, t: str(priority(j))),
    "p": ("PRIORITY", lambda j, t: f"{min(1.0, priority(j) / 4294967295):.14f}"),
    "E": ("DEPENDENCY", lambda j, t: j.get("dependency_state") or "(null)"),
    "k": ("COMMENT", lambda j, t: _null(j.get("comment"))),
    "o": ("COMMAND", lambda j, t: j.get("command") or "(null)"),
    "Z": ("WORK_DIR", lambda j, t: j["working_directory"]),
    "B": ("EXEC_HOST", lambda j, t: j.get("node") or "n/a"),
    "y": ("NICE", lambda j, t: str(j["nice"])),
    "h": ("OVER_SUBSCRIBE", lambda j, t: "NO" if j.get("exclusive") else "OK"),
    "b": ("TRES_PER_NODE", lambda j, t: f"gres/gpu:{j['gpus_per_node']}" if j.get("gpus_per_node") else "N/A"),
    "O": ("CONTIGUOUS", lambda j, t: "0"),
    "f": ("FEATURES", lambda j, t: "(null)"),
    "v": ("RESERVATION", lambda j, t: "(null)"),
    "w": ("WCKEY", lambda j, t: "(null)"),
    "z": ("S:C:T", lambda j, t: "*:*:*"),
    "g": ("GROUP", lambda j, t: j["user"]),
    "H": ("S_C_T", lambda j, t: "*"),
    "I": ("CORES", lambda j, t: "*"),
    "J": ("THREADS", lambda j, t: "*"),
    "d": ("MIN_TMP_DISK", lambda j, t: "0"),
    "X": ("CORE_SPEC", lambda j, t: "N/A"),
    "Y": ("SCHEDNODES", lambda j, t: "(null)"),
}

#: squeue -O names (lower-case) -> a %-code, or a function of its own.
SQUEUE_NAMES: dict[str, str] = {
    "jobid": "i", "jobarrayid": "i", "arrayjobid": "F", "arraytaskid": "K", "name": "j", "username": "u",
    "userid": "U", "state": "T", "statecompact": "t", "reason": "r", "reasonlist": "R", "timeused": "M",
    "timelimit": "l", "timeleft": "L", "numnodes": "D", "numcpus": "C", "mincpus": "c", "nodelist": "N",
    "partition": "P", "account": "a", "qos": "q", "minmemory": "m", "starttime": "S", "endtime": "e",
    "submittime": "V", "priority": "p", "prioritylong": "Q", "dependency": "E", "comment": "k",
    "command": "o", "workdir": "Z", "batchhost": "B", "nice": "y", "oversubscribe": "h", "tres-per-node": "b",
    "reqnodes": "n", "exclude": "x", "feature": "f", "reservation": "v", "wckey": "w", "groupname": "g",
}
_EXTRA_NAMES: dict[str, tuple[str, Callable[[Job, datetime], str]]] = {
    "stdout": ("STDOUT", lambda j, t: j["stdout_path"]),
    "stderr": ("STDERR", lambda j, t: j["stderr_path"]),
    "stdin": ("STDIN", lambda j, t: "/dev/null"),
    "exit_code": ("EXIT_CODE", lambda j, t: str(j.get("return_code") or j.get("signal") or 0)),
    "cluster": ("CLUSTER", lambda j, t: j.get("cluster") or "(null)"),
    "numtasks": ("NUM_TASKS", lambda j, t: str(j.get("ntasks", 1))),
    "cpus-per-task": ("CPUS_PER_TASK", lambda j, t: str(j["cpus_per_task"])),
    "restartcnt": ("RESTARTCNT", lambda j, t: str(j["restart_count"])),
    "eligibletime": ("ELIGIBLE_TIME", lambda j, t: slurm_time(j.get("submit_time"))),
    "origin": ("ORIGIN", lambda j, t: j.get("submit_host") or "(null)"),
    "admin_comment": ("ADMIN_COMMENT", lambda j, t: "(null)"),
}


def _uid(user: str) -> str:
    import pwd

    try:
        return str(pwd.getpwnam(user).pw_uid)
    except KeyError:
        return "4294967294"


@dataclass(frozen=True)
class Column:
    """One output field: its header, its value, its width (None: as wide as the value) and justification."""

    header: str
    value: Callable[[Job, datetime], str]
    width: int | None = None
    right: bool = False
    suffix: str = ""


#: Literal text between fields is kept as a column with a fixed value.
_FIELD = re.compile(r"%(\.)?(\d*)([A-Za-z%])")


def squeue_format(text: str) -> list[Column]:
    """Columns of an ``-o`` format: ``%.18i %.9P %j`` (``%%`` is a percent sign; other text literal)."""
    columns: list[Column] = []
    position = 0
    for match in _FIELD.finditer(text):
        if match.start() > position:
            columns.append(_literal(text[position:match.start()]))
        position = match.end()
        dot, width, code = match.groups()
        if code == "%":
            columns.append(_literal("%"))
            continue
        if code not in SQUEUE_CODES:
            raise CommandError(f"squeue: error: Invalid job format specification: {code}")
        header, value = SQUEUE_CODES[code]
        columns.append(Column(header, value, int(width) if width else None, right=bool(dot)))
    if position < len(text):
        columns.append(_literal(text[position:]))
    return columns


def _literal(text: str) -> Column:
    return Column(text, lambda j, t, text=text: text, None)


def squeue_format_long(text: str) -> list[Column]:
    """Columns of an ``-O`` format: ``JobID,Name:30,State:.10`` (width 20 by default, no separator)."""
    columns = []
    for item in (part for part in text.split(",") if part):
        name, _, size = item.partition(":")
        right = size.startswith(".")
        width_text = size.lstrip(".")
        digits = re.match(r"\d*", width_text).group(0)  # type: ignore[union-attr]
        key = name.strip().lower()
        if key in SQUEUE_NAMES:
            header, value = SQUEUE_CODES[SQUEUE_NAMES[key]]
            header = name.strip().upper()
        elif key in _EXTRA_NAMES:
            header, value = _EXTRA_NAMES[key]
        else:
            raise CommandError(f"squeue: error: Invalid job format specification: {name}")
        columns.append(Column(header, value, int(digits) if digits else 20, right, width_text[len(digits):]))
    return columns


def lay_out(columns: list[Column], jobs: list[Job], at: datetime, *, header: bool) -> list[str]:
    """Lines of the table: each field cut to its width (as squeue cuts), padded, and its suffix."""
    rows = [[column.header for column in columns]] if header else []
    rows += [[column.value(job, at) for column in columns] for job in jobs]
    return [_line(columns, row) for row in rows]


def _line(columns: list[Column], cells: list[str]) -> str:
    parts = []
    for column, cell in zip(columns, cells):
        if column.width is not None:
            cell = cell[:column.width]
            cell = cell.rjust(column.width) if column.right else cell.ljust(column.width)
        parts.append(cell + column.suffix)
    return "".join(parts)
