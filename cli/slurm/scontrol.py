"""scontrol: show jobs, nodes, partitions and hostlists; hold, release, requeue and update jobs.

    scontrol [-o] [-d] show job [ID] | show node [NAME] | show partition [NAME] | show config
    scontrol show hostnames [LIST] | show hostlist LIST | show hostlistsorted LIST
    scontrol hold|uhold|release|requeue|requeuehold ID[,ID...]
    scontrol update JobId=ID [TimeLimit=T] [Priority=N] [Nice=N] [Comment=TEXT] [JobName=NAME]
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Callable

from cli.slurm import common, records
from conductor import hostlist

#: scontrol update's job keys -> the PATCH field.
_UPDATE_KEYS = {"timelimit": "time_limit", "priority": "priority", "nice": "nice", "comment": "comment",
                "jobname": "name", "name": "name"}


def main(argv: list[str] | None = None) -> int:
    return common.run("scontrol", lambda: _scontrol(list(argv or [])))


def _scontrol(argv: list[str]) -> int:
    flags = {"one_line": False, "details": False}
    words = []
    for arg in argv:
        if arg in ("-o", "--oneliner"):
            flags["one_line"] = True
        elif arg in ("-d", "--details"):
            flags["details"] = True
        elif arg in ("-Q", "--quiet", "-v", "--verbose", "-a", "--all"):
            continue
        elif arg.startswith("-M") or arg.startswith("--clusters"):
            continue
        elif arg in ("-h", "--help", "help"):
            print(__doc__.strip())
            return 0
        elif arg.startswith("-") and not words:
            common.fail(f"scontrol: unrecognized option '{arg}'\nTry \"scontrol --help\" for more information")
        else:
            words.append(arg)
    if not words:
        print(__doc__.strip())
        return 0
    verb, rest = words[0].lower(), words[1:]
    if verb == "show":
        return _show(rest, **flags)
    if verb in _VERBS:
        return _VERBS[verb](rest)
    if verb == "update":
        return _update(rest)
    if verb in ("suspend", "resume"):
        ids = common.split_ids(rest)
        common.fail("\n".join(f"Unexpected message received for job {i}" for i in ids) or
                    "scontrol: error: no job id given")
    if verb == "ping":
        print(f"Slurmctld(primary) at {_api_host()} is UP")
        return 0
    if verb == "version":
        print("slurm 22.05.8 (conductor)")
        return 0
    common.fail(f"invalid keyword: {words[0]}")


def _api_host() -> str:
    from urllib.parse import urlparse

    api = common.client()
    return urlparse(api.base_url).hostname or "localhost"


# -- show -------------------------------------------------------------------------------------

def _show(words: list[str], *, one_line: bool, details: bool) -> int:
    if not words:
        common.fail("scontrol: error: show what? (job, node, partition, config, hostnames, hostlist)")
    what, names = words[0].lower(), words[1:]
    if what in ("job", "jobs", "jobid"):
        return _show_jobs(names[0] if names else None, one_line=one_line, details=details)
    if what in ("node", "nodes"):
        return _show_records(records.node_records(common.client()), names, "Node", one_line)
    if what in ("partition", "partitions", "partitionname"):
        return _show_records(records.partition_records(common.client()), names, "Partition", one_line)
    if what == "hostnames":
        text = names[0] if names else os.environ.get("SLURM_NODELIST", "")
        if not text:
            print("scontrol: error: host list is empty", file=sys.stderr)
            return 0
        print("\n".join(_expand(text)))
        return 0
    if what in ("hostlist", "hostlistsorted"):
        names_in = _expand(names[0]) if names else []
        print(hostlist.compress(sorted(names_in) if what == "hostlistsorted" else names_in))
        return 0
    if what == "config":
        print(records.config_text())
        return 0
    if what in ("step", "steps"):
        print("No job steps in the system")
        return 0
    common.fail(f"invalid entity: {words[0]} for keyword: show")


def _expand(text: str) -> list[str]:
    try:
        return hostlist.expand(text)
    except ValueError:
        common.fail(f"scontrol: error: invalid hostlist: {text}")


def _show_jobs(text: str | None, *, one_line: bool, details: bool) -> int:
    api = common.client()
    at = common.now()
    if text is None:
        jobs = [job for job in api.all_jobs({"state": list(common.ACTIVE_STATES)})]
        since = at.timestamp() - common.MIN_JOB_AGE_S
        jobs += api.all_jobs({"state": list(common.FINISHED_STATES),
                              "ended_since": datetime.fromtimestamp(since).astimezone().isoformat()})
        if not jobs:
            print("No jobs in the system")
            return 0
    else:
        ref = common.job_refs([text], "scontrol", "scontrol_print_job error: Invalid job id specified")[0]
        jobs = api.all_jobs({"job": [ref]})
        if not jobs:
            common.fail(f"Job {ref} not found" if "_" in ref else "slurm_load_jobs error: Invalid job id specified")
    for job in sorted(jobs, key=lambda j: j["job_id"]):
        print(records.record(records.job_fields(job, at, details=details), one_line=one_line))
    return 0


def _show_records(found: list[list[list[tuple[str, str]]]], names: list[str], kind: str, one_line: bool) -> int:
    wanted = [record for record in found if not names or record[0][0][1] in names]
    if names and not wanted:
        common.fail(f"{kind} {names[0]} not found")
    if not wanted:
        print(f"No {kind.lower()}s in the system")
    for record in wanted:
        print(records.record(record, one_line=one_line))
    return 0


# -- hold, release, requeue, update ---------------------------------------------------------------

def _each(action: str, field: str, *, suspend_error: bool = False,
          after: Callable[[str], None] | None = None) -> Callable[[list[str]], int]:
    def verb(words: list[str]) -> int:
        from cli.client import ClientError

        ids = common.job_refs(common.split_ids(words), "scontrol", "error: Invalid job id {id}")
        if not ids:
            common.fail(f"scontrol: error: no job id given for {action}")
        api, code = common.client(), 0
        for ref in ids:
            try:
                reply = api.control(ref, action)
            except ClientError as exc:
                if "does not exist" not in str(exc):
                    raise
                print(f"Invalid job id specified for job {ref}", file=sys.stderr)
                code = 1
                continue
            if not reply[field] and action == "requeue":
                state = api.job(ref)["state"]
                print(f"Job is pending execution for job {ref}" if state == "PENDING"
                      else f"Job is no longer pending execution for job {ref}", file=sys.stderr)
                code = 1
            elif after is not None:
                after(ref)
        if code and suspend_error:
            print("slurm_suspend error: Invalid job id specified", file=sys.stderr)
        return code
    return verb


def _hold_after_requeue(ref: str) -> None:
    common.client().control(ref, "hold")


_VERBS = {
    "hold": _each("hold", "held", suspend_error=True), "uhold": _each("hold", "held", suspend_error=True),
    "release": _each("release", "released", suspend_error=True),
    "requeue": _each("requeue", "requeued"),
    "requeuehold": _each("requeue", "requeued", after=_hold_after_requeue),
}


def _update(words: list[str]) -> int:
    from cli.client import ClientError

    pairs = [word.partition("=") for word in words]
    ids = [value for key, _, value in pairs if key.lower() in ("jobid", "job")]
    changes = {}
    for key, sep, value in pairs:
        if key.lower() in ("jobid", "job"):
            continue
        if not sep or key.lower() not in _UPDATE_KEYS:
            common.fail(f"Update of this parameter is not supported: {key}{sep}{value}\nRequest aborted")
        changes[_UPDATE_KEYS[key.lower()]] = _update_value(key.lower(), value)
    if not ids:
        common.fail("No job id specified\nRequest aborted" if changes else "scontrol: error: update what?")
    refs = common.job_refs(common.split_ids(ids), "scontrol", "error: Invalid job id {id}")
    api, code = common.client(), 0
    for ref in refs:
        try:
            reply = api.update_job(ref, changes)
        except ClientError as exc:
            message = str(exc)
            print(f"Invalid job id specified for job {ref}" if "does not exist" in message
                  else f"{message} for job {ref}", file=sys.stderr)
            code = 1
            continue
        if not reply["updated"]:
            print(f"Job is no longer pending execution for job {ref}", file=sys.stderr)
            code = 1
    return code


def _update_value(key: str, value: str) -> object:
    if key in ("priority", "nice"):
        try:
            return int(value)
        except ValueError:
            common.fail(f"Invalid {key} value: {value}\nRequest aborted")
    if key == "timelimit":
        return value if not value.isdigit() else int(value)
    return value

