"""sacct: jobs from the accounting records (conductor's database), one row per job and per batch step.

    sacct [-j IDS] [-X] [-n] [-P|-p] [-o FIELDS] [-S TIME] [-E TIME] [-s STATES] [-u USERS|-a]
          [--name NAMES] [--json]
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import Callable

from cli import render
from cli.slurm import common, fmt

DEFAULT_FIELDS = "jobid,jobname,partition,account,alloccpus,state,exitcode"
BRIEF_FIELDS = "jobid,state,exitcode"
LONG_FIELDS = ("jobid,jobidraw,jobname,partition,maxvmsize,maxrss,averss,maxpages,reqcpus,alloccpus,elapsed,state,"
               "exitcode,cluster,submit,start,end,nodelist,ncpus,nnodes,reqmem,timelimit,totalcpu,user,workdir")

Row = dict  # an API job, plus "_step": None (the job) or "batch"


def _elapsed(job: Row, at: datetime) -> float:
    return render.elapsed_s(job, at)


def _state(job: Row) -> str:
    return job["state"]


def _id(job: Row) -> str:
    return fmt.job_id(job) + (f".{job['_step']}" if job["_step"] else "")


def _raw(job: Row) -> str:
    return str(job["job_id"]) + (f".{job['_step']}" if job["_step"] else "")


def _job_only(value: Callable[[Row, datetime], str]) -> Callable[[Row, datetime], str]:
    """A value sacct shows on the job's row only (a step's is blank)."""
    return lambda job, at: "" if job["_step"] else value(job, at)


def _nodes(job: Row) -> str:
    return fmt.node_list(job) or "None assigned"


def _limit(job: Row) -> str:
    limit = job.get("time_limit_s")
    return "UNLIMITED" if limit is None else render.sacct_elapsed(limit)


#: Field name (lower case) -> (header, default width, value).  Widths are sacct's.
FIELDS: dict[str, tuple[str, int, Callable[[Row, datetime], str]]] = {
    "jobid": ("JobID", 12, lambda j, t: _id(j)),
    "jobidraw": ("JobIDRaw", 12, lambda j, t: _raw(j)),
    "jobname": ("JobName", 10, lambda j, t: "batch" if j["_step"] else j["name"]),
    "partition": ("Partition", 10, _job_only(lambda j, t: j["partition"])),
    "account": ("Account", 10, lambda j, t: j["account"]),
    "alloccpus": ("AllocCPUS", 10, lambda j, t: str(j["cpus"]) if j["state"] != "PENDING" else "0"),
    "ncpus": ("NCPUS", 10, lambda j, t: str(j["cpus"])),
    "reqcpus": ("ReqCPUS", 8, lambda j, t: str(j["cpus"])),
    "state": ("State", 10, lambda j, t: _state(j)),
    "exitcode": ("ExitCode", 8, lambda j, t: j["exit_code"]),
    "derivedexitcode": ("DerivedExitCode", 15, lambda j, t: j["exit_code"]),
    "elapsed": ("Elapsed", 10, lambda j, t: render.sacct_elapsed(_elapsed(j, t))),
    "elapsedraw": ("ElapsedRaw", 10, lambda j, t: str(int(_elapsed(j, t)))),
    "timelimit": ("Timelimit", 10, _job_only(lambda j, t: _limit(j))),
    "timelimitraw": ("TimelimitRaw", 12, _job_only(lambda j, t: "UNLIMITED" if j.get("time_limit_s") is None
                                                   else str(j["time_limit_s"] // 60))),
    "submit": ("Submit", 19, lambda j, t: fmt.slurm_time(j.get("submit_time"), "Unknown")),
    "eligible": ("Eligible", 19, lambda j, t: fmt.slurm_time(j.get("begin_time") or j.get("submit_time"), "Unknown")),
    "start": ("Start", 19, lambda j, t: fmt.slurm_time(j.get("start_time"), "Unknown")),
    "end": ("End", 19, lambda j, t: fmt.slurm_time(j.get("end_time"), "Unknown")),
    "nodelist": ("NodeList", 15, lambda j, t: _nodes(j)),
    "nnodes": ("NNodes", 8, lambda j, t: str(j.get("nodes", 1))),
    "reqnodes": ("ReqNodes", 8, lambda j, t: str(j.get("nodes", 1))),
    "allocnodes": ("AllocNodes", 10, lambda j, t: str(j.get("nodes", 1)) if j["state"] != "PENDING" else "0"),
    "ntasks": ("NTasks", 8, lambda j, t: str(j.get("ntasks", 1)) if j["_step"] else ""),
    "reqmem": ("ReqMem", 10, lambda j, t: fmt.min_memory(j)),
    "maxrss": ("MaxRSS", 10, lambda j, t: render.max_rss(j.get("max_rss_kb")) if j["_step"] else ""),
    "totalcpu": ("TotalCPU", 10, lambda j, t: render.sacct_cpu_time(render.total_cpu_s(j)) or "00:00:00"),
    "usercpu": ("UserCPU", 10, lambda j, t: render.sacct_cpu_time(j.get("cpu_time_user_s")) or "00:00:00"),
    "systemcpu": ("SystemCPU", 10, lambda j, t: render.sacct_cpu_time(j.get("cpu_time_system_s")) or "00:00:00"),
    "cputime": ("CPUTime", 10, lambda j, t: render.sacct_elapsed(_elapsed(j, t) * j["cpus"])),
    "cputimeraw": ("CPUTimeRAW", 10, lambda j, t: str(int(_elapsed(j, t) * j["cpus"]))),
    "user": ("User", 9, _job_only(lambda j, t: j["user"])),
    "uid": ("UID", 6, _job_only(lambda j, t: fmt._uid(j["user"]))),
    "group": ("Group", 9, _job_only(lambda j, t: j["user"])),
    "comment": ("Comment", 10, _job_only(lambda j, t: j.get("comment") or "")),
    "workdir": ("WorkDir", 10, _job_only(lambda j, t: j["working_directory"])),
    "cluster": ("Cluster", 10, lambda j, t: j.get("cluster") or ""),
    "priority": ("Priority", 10, _job_only(lambda j, t: str(fmt.priority(j)))),
    "qos": ("QOS", 10, _job_only(lambda j, t: "normal")),
    "reason": ("Reason", 10, _job_only(lambda j, t: j["reason"])),
    "arrayjobid": ("ArrayJobID", 12, lambda j, t: str(j["array_job_id"]) if j.get("array_job_id") is not None else ""),
    "arraytaskid": ("ArrayTaskID", 12, lambda j, t: str(j["array_task_id"]) if j.get("array_task_id") is not None
                    else ""),
    "restarts": ("Restarts", 8, _job_only(lambda j, t: str(j["restart_count"]))),
    "submitline": ("SubmitLine", 20, _job_only(lambda j, t: j.get("command") or "")),
    "maxvmsize": ("MaxVMSize", 10, lambda j, t: ""),
    "averss": ("AveRSS", 10, lambda j, t: ""),
    "maxpages": ("MaxPages", 8, lambda j, t: ""),
    "layout": ("Layout", 8, lambda j, t: "Unknown" if j["_step"] else ""),
    "flags": ("Flags", 10, lambda j, t: ""),
    "constraints": ("Constraints", 19, lambda j, t: ""),
    "reservation": ("Reservation", 20, lambda j, t: ""),
    "wckey": ("WCKey", 10, lambda j, t: ""),
    "alloctres": ("AllocTRES", 10, lambda j, t: _tres(j) if j["state"] != "PENDING" else ""),
    "reqtres": ("ReqTRES", 10, _job_only(lambda j, t: _tres(j))),
}
_LEFT = frozenset({"jobid", "jobidraw"})


def _tres(job: Row) -> str:
    parts = [f"cpu={job['cpus']}", f"mem={fmt.min_memory(job)}", f"node={job.get('nodes', 1)}"]
    if job.get("gpus_per_node"):
        parts.append(f"gres/gpu={job['gpus_per_node'] * job.get('nodes', 1)}")
    return ",".join(parts)


def _parser() -> argparse.ArgumentParser:
    parser = common.parser("sacct")
    add = parser.add_argument
    add("-h", "--help", action="store_true")
    add("-j", "--jobs", "--job", action="append", default=[])
    add("-n", "--noheader", action="store_true")
    add("-X", "--allocations", action="store_true")
    add("-P", "--parsable2", action="store_true")
    add("-p", "--parsable", action="store_true")
    add("--delimiter", default="|")
    add("-o", "--format", action="append", default=[])
    add("-b", "--brief", action="store_true")
    add("-l", "--long", action="store_true")
    add("-S", "--starttime")
    add("-E", "--endtime")
    add("-s", "--state", action="append", default=[])
    add("-u", "--user", "--uid", action="append", default=[])
    add("-a", "--allusers", action="store_true")
    add("--name", "--jobname", action="append", default=[])
    add("-A", "--account", "--accounts", action="append", default=[])
    add("-r", "--partition", action="append", default=[])
    add("--json", nargs="?", const="")
    add("--yaml", nargs="?", const="")
    for flags in (("-D", "--duplicates"), ("-L", "--allclusters"), ("--noconvert",), ("-T", "--truncate"),
                  ("-v", "--verbose"), ("-c", "--completion"), ("--local",), ("--federation",), ("--array",),
                  ("-e", "--helpformat"), ("-B", "--batch-script"), ("--env-vars",)):
        add(*flags, action="store_true")
    for flags in (("-M", "--clusters"), ("--units",), ("-q", "--qos"), ("-N", "--nodelist"), ("-i", "--nnodes"),
                  ("-I", "--ncpus"), ("-k", "--timelimit-min"), ("-K", "--timelimit-max"), ("-W", "--wckeys"),
                  ("-x", "--associations"), ("-f", "--file"), ("-g", "--gid", "--group"), ("--reason",)):
        add(*flags)
    return parser


def main(argv: list[str] | None = None) -> int:
    return common.run("sacct", lambda: _sacct(list(argv or [])))


def _sacct(argv: list[str]) -> int:
    options = _parser().parse_args(argv)
    if options.help:
        print(__doc__.strip())
        return 0
    at = common.now()
    fields = _fields(options)
    jobs = _jobs(options, at)
    if options.json is not None or options.yaml is not None:
        print(json.dumps({"jobs": jobs, "meta": {"plugin": {"name": "conductor"}}, "errors": [], "warnings": []},
                         indent=2))
        return 0
    asked = _asked_steps(options)
    rows = [dict(job, _step=step) for job in jobs for step in _steps(job, options.allocations)
            if _wanted(asked, job, step)]
    for line in _lines(fields, rows, at, options):
        print(line)
    return 0


def _asked_steps(options: argparse.Namespace) -> dict[str, set[str | None]]:
    """``-j 42.batch``, ``-j 40_2.0``: the steps asked for by job name; None stands for every row (``-j 42``)."""
    asked: dict[str, set[str | None]] = {}
    for text in common.split_ids(options.jobs):
        name, _, step = text.partition(".")
        asked.setdefault(name, set()).add(step or None)
    return asked


def _wanted(asked: dict[str, set[str | None]], job: dict, step: str | None) -> bool:
    """A row is shown unless its job was named with steps only, and not this one."""
    names = [name for name in (fmt.job_id(job), str(job["job_id"])) if name in asked]
    return not names or any(None in asked[name] or step in asked[name] for name in names)


def _steps(job: dict, allocations: bool) -> list[str | None]:
    """The job's row, and its batch step's once it started (sacct -X: the job's only)."""
    return [None] if allocations or not job.get("start_time") else [None, "batch"]


def _fields(options: argparse.Namespace) -> list[tuple[str, int | None, bool]]:
    """(name, width or None for the default, left-justified) per field of -o."""
    import os

    text = ",".join(options.format) or os.environ.get("SACCT_FORMAT") or (
        BRIEF_FIELDS if options.brief else LONG_FIELDS if options.long else DEFAULT_FIELDS)
    fields = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, _, width = item.partition("%")
        key = name.lower()
        if key not in FIELDS:
            common.fail(f'sacct: error: Invalid field requested: "{name}"')
        left = width.startswith("-") or (not width and key in _LEFT)
        try:
            fields.append((key, int(width.lstrip("-")) if width else None, left))
        except ValueError:
            common.fail(f'sacct: error: Invalid field requested: "{item}"')
    return fields


def _lines(fields: list, rows: list[Row], at: datetime, options: argparse.Namespace) -> list[str]:
    header = not options.noheader
    if options.parsable2 or options.parsable:
        tail = options.delimiter if options.parsable else ""
        table = ([[FIELDS[key][0] for key, _, _ in fields]] if header else []) + [
            [FIELDS[key][2](row, at) for key, _, _ in fields] for row in rows]
        return [options.delimiter.join(cells) + tail for cells in table]
    lines = []
    widths = [width or FIELDS[key][1] for key, width, _ in fields]
    if header:
        lines.append(_fixed([FIELDS[key][0] for key, _, _ in fields], widths, fields))
        lines.append(" ".join("-" * width for width in widths) + " ")
    lines += [_fixed([FIELDS[key][2](row, at) for key, _, _ in fields], widths, fields) for row in rows]
    return lines


def _fixed(cells: list[str], widths: list[int], fields: list) -> str:
    """sacct's fixed columns: a value too long for its column ends in '+'."""
    out = []
    for cell, width, (_, _, left) in zip(cells, widths, fields):
        cell = cell if len(cell) <= width else cell[:width - 1] + "+"
        out.append(cell.ljust(width) if left else cell.rjust(width))
    return " ".join(out) + " "


def _when(text: str, flag: str) -> datetime:
    """sacct's times: YYYY-MM-DD[THH:MM[:SS]], MMDD[YY], now, now[-+]N[units], today, midnight."""
    from cli.slurm.times import parse_time

    try:
        return parse_time(text)
    except ValueError:
        common.fail(f"sacct: error: {flag}: invalid time specification '{text}'")


def _jobs(options: argparse.Namespace, at: datetime) -> list[dict]:
    """The jobs of the query: -j names them (any time); else those active, or ended, in the window."""
    refs = common.job_refs([text.split(".")[0] for text in common.split_ids(options.jobs)], "sacct")
    states = common.state_names(",".join(options.state), "sacct") if options.state else None
    params: dict = {"user": [] if options.allusers else common.split_ids(options.user),
                    "name": common.split_ids(options.name), "account": common.split_ids(options.account),
                    "partition": common.split_ids(options.partition)}
    params = {key: value for key, value in params.items() if value}
    wanted = common.conductor_states(states)
    if wanted is not None:
        if not wanted:
            return []
        params["state"] = wanted
    api = common.client()
    if refs:
        return api.all_jobs({**params, "job": refs})
    start = _when(options.starttime, "--starttime") if options.starttime else _midnight(at)
    end = _when(options.endtime, "--endtime") if options.endtime else None
    window = {"until": end.isoformat()} if end else {}
    active = [s for s in params.get("state", common.ACTIVE_STATES) if s in common.ACTIVE_STATES]
    ended = [s for s in params.get("state", common.FINISHED_STATES) if s in common.FINISHED_STATES]
    found = api.all_jobs({**params, **window, "state": active}) if active else []
    if ended:
        found += api.all_jobs({**params, **window, "state": ended, "ended_since": start.isoformat()})
    return sorted(found, key=lambda job: job["job_id"])


def _midnight(at: datetime) -> datetime:
    local = at.astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(0)
