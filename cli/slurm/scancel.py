"""scancel: cancel jobs, or send them a signal.

    scancel [-s SIGNAL] [-u USER] [-n NAME] [-t STATE] [-p PART] [-A ACCOUNT] [JOBID[_TASK] ...]

Plain ids of jobs that are unknown or already ended are ignored (exit 0), as scancel does; with a
signal or a filter such an id is an error.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from cli.slurm import common


def _parser() -> argparse.ArgumentParser:
    parser = common.parser("scancel")
    add = parser.add_argument
    add("--help", action="store_true")
    add("ids", nargs="*")
    add("-s", "--signal")
    add("-u", "--user")
    add("--me", action="store_true")
    add("-n", "--name", "--jobname")
    add("-t", "--state")
    add("-p", "--partition")
    add("-A", "--account")
    add("-b", "--batch", action="store_true")
    add("-f", "--full", action="store_true")
    add("-v", "--verbose", action="store_true")
    add("-Q", "--quiet", action="store_true")
    for flags in (("-H", "--hurry"), ("-i", "--interactive"), ("--sibling",), ("--ctld",), ("--cron",)):
        add(*flags, action="store_true")
    for flags in (("-M", "--clusters"), ("-q", "--qos"), ("-R", "--reservation"), ("-w", "--nodelist"),
                  ("--wckey",)):
        add(*flags)
    return parser


def main(argv: list[str] | None = None) -> int:
    return common.run("scancel", lambda: _scancel(list(argv or [])))


def _scancel(argv: list[str]) -> int:
    options = _parser().parse_intermixed_args(argv)
    if options.help:
        print(__doc__.strip())
        return 0
    refs = common.job_refs(common.split_ids(options.ids), "scancel", "error: Invalid job id {id}")
    filters = _filters(options)
    if not refs and not filters:
        common.fail("scancel: error: No job identification provided")
    signal = _signal(options.signal) if options.signal else None
    strict = bool(filters) or signal is not None or options.batch
    api = common.client()
    if filters:
        refs = _matching(api, refs, filters)
    code = 0
    for ref in refs:
        code = max(code, _cancel(api, ref, signal, strict=strict, verbose=options.verbose))
    return code


def _filters(options: argparse.Namespace) -> dict:
    states = common.state_names(options.state, "scancel") if options.state else None
    user = getpass.getuser() if options.me else options.user
    filters = {"user": user, "name": options.name, "partition": options.partition, "account": options.account,
               "state": states}
    return {key: value for key, value in filters.items() if value}


def _matching(api, refs: list[str], filters: dict) -> list[str]:  # noqa: ANN001
    """The active jobs matching every filter (and the ids, when given)."""
    params = {key: (value if isinstance(value, list) else value.split(",")) for key, value in filters.items()}
    states = [s for s in params.pop("state", common.ACTIVE_STATES) if s in common.ACTIVE_STATES]
    if not states:
        return []
    if refs:
        params["job"] = refs
    return [job["display_id"] for job in api.all_jobs({**params, "state": states})]


def _signal(text: str) -> str:
    from conductor.jobs import parse_warning_signal

    try:
        return str(parse_warning_signal(text.split("@")[0]).signal)
    except ValueError:
        common.fail(f"scancel: error: Invalid job signal: {text}")


def _cancel(api, ref: str, signal: str | None, *, strict: bool, verbose: bool) -> int:  # noqa: ANN001
    """Cancel one job: 0, or 1 for an id scancel reports (unknown or ended, when ``strict``)."""
    from cli.client import ClientError

    try:
        reply = api.control(ref, "cancel", {"signal": signal} if signal else None)
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
        if strict:
            print(f"scancel: error: Kill job error on job id {ref}: Invalid job id specified", file=sys.stderr)
            return 1
        return 0
    if not (reply["cancelled"] or reply["signalled"]):
        message = f"scancel: error: Kill job error on job id {ref}: Job/step already completing or completed"
        if strict or verbose:
            print(message, file=sys.stderr)
        return 1 if strict else 0
    return 0
