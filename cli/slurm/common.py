"""What the Slurm commands share: the API client, Slurm's states, job id lists, errors and exit codes."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, NoReturn

Job = dict[str, Any]

#: Slurm's job states (long name -> compact code); conductor's jobs are in the first eight.
SLURM_STATES = {
    "PENDING": "PD", "RUNNING": "R", "COMPLETED": "CD", "FAILED": "F", "CANCELLED": "CA", "TIMEOUT": "TO",
    "OUT_OF_MEMORY": "OOM", "NODE_FAIL": "NF", "SUSPENDED": "S", "COMPLETING": "CG", "CONFIGURING": "CF",
    "PREEMPTED": "PR", "BOOT_FAIL": "BF", "DEADLINE": "DL", "REQUEUED": "RQ", "REQUEUE_HOLD": "RH",
    "REQUEUE_FED": "RF", "RESIZING": "RS", "RESV_DEL_HOLD": "RD", "REVOKED": "RV", "SIGNALING": "SI",
    "SPECIAL_EXIT": "SE", "STAGE_OUT": "SO", "STOPPED": "ST",
}
_BY_CODE = {code: name for name, code in SLURM_STATES.items()}
CONDUCTOR_STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY",
                    "NODE_FAIL")
ACTIVE_STATES = ("PENDING", "RUNNING")
FINISHED_STATES = tuple(state for state in CONDUCTOR_STATES if state not in ACTIVE_STATES)
#: slurm.conf's MinJobAge: squeue and scontrol still show a job this long after it ended.
MIN_JOB_AGE_S = 300


class CommandError(Exception):
    """One message (possibly several lines) for stderr, and the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise CommandError(message, code)


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command: its exit code; a CommandError or an unreachable API is printed Slurm-style."""
    from cli.client import ClientError

    try:
        return body() or 0
    except CommandError as exc:
        if str(exc):
            print(str(exc), file=sys.stderr)
        return exc.code
    except ClientError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `squeue | head`
        return 0


def client():  # noqa: ANN201 - a cli.client.ApiClient
    """The API client, configured as ``conductor``'s is (CONDUCTOR_URL, CONDUCTOR_TOKEN, app.properties)."""
    import os

    from cli.client import ApiClient
    from conductor.exceptions import ConfigError
    from conductor.properties import load_client_config

    try:
        found = load_client_config(None, os.environ)
        if found is None:  # API_PORT is not a port number: the full configuration names the error
            from conductor.config import load_settings

            found = load_settings().client_config
    except ConfigError as exc:
        fail(f"error: {exc}")
    return ApiClient(found)


def parser(prog: str):  # noqa: ANN201 - an argparse.ArgumentParser
    """An option parser whose errors are the command's: ``squeue: unrecognized option '--x'`` and its
    ``Try "squeue --help"`` line, or ``squeue: error: ...``; the exit code is 1."""
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            if "unrecognized arguments" in message:
                fail(f"{prog}: unrecognized option '{message.split(': ', 1)[1].split()[0]}'\n"
                     f"Try \"{prog} --help\" for more information")
            fail(f"{prog}: error: {message.removeprefix('argument ')}")

    return _Parser(prog=prog, add_help=False, allow_abbrev=False)


def state_names(text: str, prog: str) -> list[str] | None:
    """``-t``/``--states``: long names or compact codes, any case; None for ``all``.  Slurm's states that
    no conductor job can be in are accepted and match nothing."""
    names = []
    for part in (p.strip().upper() for p in text.split(",") if p.strip()):
        if part == "ALL":
            return None
        name = _BY_CODE.get(part, part)
        if name not in SLURM_STATES:
            valid = " ".join(SLURM_STATES)
            fail(f"{prog}: error: Invalid job state specified: {part}\nValid job states include: {valid}")
        names.append(name)
    return names


def split_ids(values: Iterable[str]) -> list[str]:
    """``-j 1,2 -j 3`` and ``'1 2'`` -> ['1', '2', '3']."""
    return [part for value in values for part in value.replace(" ", ",").split(",") if part]


def job_refs(texts: Iterable[str], prog: str, message: str = "error: Invalid job id: {id}") -> list[str]:
    """Job ids as Slurm takes them: ``42``, ``40_2``, ``40_[1-3,5]``, ``40_*`` -> ['42', '40_2', ...]."""
    from conductor.jobs import parse_job_ref

    refs = []
    for text in texts:
        base, sep, rest = text.partition("_")
        if sep and rest.startswith("[") and rest.endswith("]"):
            try:
                refs.extend(f"{base}_{index}" for index in _indexes(rest[1:-1].split("%")[0]))
                continue
            except ValueError:
                fail(f"{prog}: {message.format(id=text)}")
        if sep and rest == "*":
            text = base
        try:
            refs.append(str(parse_job_ref(text)))
        except ValueError:
            fail(f"{prog}: {message.format(id=text)}")
    return refs


def _indexes(text: str) -> list[int]:
    from conductor import arrays

    return list(arrays.parse(text).indexes)


def now() -> datetime:
    return datetime.now(timezone.utc)


def still_known(job: Job, at: datetime) -> bool:
    """Whether slurmctld would still hold the job: not ended, or ended less than MinJobAge ago."""
    from cli.render import parse_time

    end = parse_time(job.get("end_time"))
    return job["state"] in ACTIVE_STATES or end is None or at - end <= timedelta(seconds=MIN_JOB_AGE_S)


def conductor_states(slurm_names: Iterable[str] | None) -> list[str] | None:
    """The conductor states among Slurm's names (None: every state)."""
    if slurm_names is None:
        return None
    return [name for name in slurm_names if name in CONDUCTOR_STATES]
