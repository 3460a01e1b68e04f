"""squeue: pending and running jobs (and, with -t, those that ended less than MinJobAge ago).

    squeue [-h] [-j IDS] [-u USERS] [-t STATES|all] [-p PARTS] [-n NAMES] [-A ACCOUNTS]
           [-o FORMAT | -O FIELDS | -l] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import timedelta

from cli.slurm import common, fmt

DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
LONG_FORMAT = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R"
STEPS_FORMAT = "%.15i %.8j %.9P %.8u %.9M %N"


def _parser() -> argparse.ArgumentParser:
    parser = common.parser("squeue")
    add = parser.add_argument
    add("--help", action="store_true")
    add("-h", "--noheader", action="store_true")
    add("-j", "--jobs", "--job", action="append", default=[], metavar="IDS")
    add("-u", "--user", action="append", default=[], metavar="USERS")
    add("--me", action="store_true")
    add("-t", "--states", "--state", metavar="STATES")
    add("-p", "--partition", action="append", default=[], metavar="PARTITIONS")
    add("-n", "--name", action="append", default=[], metavar="NAMES")
    add("-A", "--account", action="append", default=[], metavar="ACCOUNTS")
    add("-w", "--nodelist", action="append", default=[], metavar="NODES")
    add("-o", "--format", metavar="FORMAT")
    add("-O", "--Format", dest="format_long", metavar="FIELDS")
    add("-l", "--long", action="store_true")
    add("-s", "--steps", nargs="?", const="")
    add("--json", nargs="?", const="", metavar="VERSION")
    add("--yaml", nargs="?", const="")
    # accepted, no effect here: conductor never folds array tasks, has one cluster, no QOS or reservations
    for flags in (("-r", "--array"), ("-a", "--all"), ("--local",), ("-v", "--verbose"), ("--noconvert",),
                  ("--federation",), ("--sibling",), ("--hide",), ("--start",), ("--array-unique",),
                  ("--only-job-state",)):
        add(*flags, action="store_true")
    for flags in (("-M", "--clusters"), ("-q", "--qos"), ("-R", "--reservation"), ("-S", "--sort"),
                  ("-i", "--iterate"), ("-L", "--licenses")):
        add(*flags)
    return parser


def main(argv: list[str] | None = None) -> int:
    return common.run("squeue", lambda: _squeue(list(argv or [])))


def _squeue(argv: list[str]) -> int:
    options = _parser().parse_args(argv)
    if options.help:
        print(__doc__.strip())
        return 0
    at = common.now()
    jobs = _jobs(options, at)
    if options.json is not None or options.yaml is not None:
        print(json.dumps({"jobs": jobs, "meta": {"plugin": {"name": "conductor"}}, "errors": [], "warnings": []},
                         indent=2))
        return 0
    if options.steps is not None:  # a batch job's steps are not kept separately: none to list
        jobs = []
    for line in fmt.lay_out(_columns(options), jobs, at, header=not options.noheader):
        print(line)
    return 0


def _columns(options: argparse.Namespace) -> list[fmt.Column]:
    if options.format_long or (not options.format and os.environ.get("SQUEUE_FORMAT2")):
        return fmt.squeue_format_long(options.format_long or os.environ["SQUEUE_FORMAT2"])
    default = STEPS_FORMAT if options.steps is not None else LONG_FORMAT if options.long else DEFAULT_FORMAT
    return fmt.squeue_format(options.format or os.environ.get("SQUEUE_FORMAT") or default)


def _jobs(options: argparse.Namespace, at) -> list[dict]:  # noqa: ANN001 - a datetime
    """The jobs to show: matching every filter, among those slurmctld would still hold."""
    refs = common.job_refs(common.split_ids(options.jobs), "squeue")
    states_text = options.states or os.environ.get("SQUEUE_STATES")
    wanted = common.state_names(states_text, "squeue") if states_text else None
    params = _filters(options)
    api = common.client()
    if refs:
        known = [job for job in api.all_jobs({**params, "job": refs}) if common.still_known(job, at)]
        if not known and not _filtered(params):
            common.fail("slurm_load_jobs error: Invalid job id specified")
    else:
        known = _recent(api, params, at, wanted if states_text else list(common.ACTIVE_STATES))
    shown = list(common.ACTIVE_STATES) if not states_text else wanted
    return [job for job in known if shown is None or job["state"] in shown]


def _filtered(params: dict) -> bool:
    return any(params.values())


def _recent(api, params: dict, at, wanted: list[str] | None) -> list[dict]:  # noqa: ANN001
    """Active jobs, and (when the states ask for them) those ended within MinJobAge."""
    states = common.conductor_states(wanted)
    active = [s for s in (states if states is not None else common.ACTIVE_STATES) if s in common.ACTIVE_STATES]
    ended = [s for s in (states if states is not None else common.FINISHED_STATES) if s in common.FINISHED_STATES]
    found = api.all_jobs({**params, "state": active}) if active else []
    if ended:
        since = (at - timedelta(seconds=common.MIN_JOB_AGE_S)).isoformat()
        found += api.all_jobs({**params, "state": ended, "ended_since": since})
    return sorted(found, key=lambda job: job["job_id"])


def _filters(options: argparse.Namespace) -> dict:
    users = common.split_ids(options.user) or common.split_ids([os.environ.get("SQUEUE_USERS", "")])
    if options.me:
        import getpass

        users = [getpass.getuser()]
    params = {"user": users, "partition": common.split_ids(options.partition), "name": common.split_ids(options.name),
              "account": common.split_ids(options.account)}
    return {key: value for key, value in params.items() if value}
