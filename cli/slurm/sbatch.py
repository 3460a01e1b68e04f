"""sbatch: submit a batch script (a file, stdin, or --wrap) with sbatch's options; cli/sbatch.py reads them.

Prints ``Submitted batch job N`` (``--parsable``: ``N``; ``-Q``: nothing); ``-W`` waits and exits with
the job's exit code.  A bad option exits 255, a refused script or submission 1, as sbatch does.
"""

from __future__ import annotations

import sys
import time

from cli import sbatch as options_of
from cli.slurm import common

#: How often -W asks for the job's state.
WAIT_POLL_S = 0.5


def main(argv: list[str] | None = None) -> int:
    return common.run("sbatch", lambda: _sbatch(list(argv or [])))


def _sbatch(argv: list[str]) -> int:
    try:
        submission = options_of.parse(options_of.split_at_script(argv, options_of.build_parser("sbatch")),
                                      prog="sbatch")
    except options_of.HelpRequested as help_text:
        print(str(help_text), end="")
        return 0
    except options_of.ScriptError as exc:
        common.fail("\n".join(f"sbatch: error: {line}" for line in str(exc).splitlines()))
    except options_of.UsageError as exc:
        common.fail(_usage_message(str(exc)), 255)
    if submission.warning():
        print(f"sbatch: warning: {submission.warning()}", file=sys.stderr)
    if submission.test_only:
        print("sbatch: --test-only: the options and the script are valid; nothing was submitted", file=sys.stderr)
        return 0
    from cli.client import ClientError

    api = common.client()
    try:
        reply = api.submit(submission.body)
    except ClientError as exc:
        common.fail(f"sbatch: error: Batch job submission failed: {exc}")
    job_id = reply["job_id"]
    if not submission.quiet:
        print(job_id if submission.parsable else f"Submitted batch job {job_id}", flush=True)
    if submission.wait:
        return _wait(api, job_id, is_array=bool(reply.get("array_task_ids")))
    return 0


def _usage_message(message: str) -> str:
    if message.startswith("unrecognized arguments:"):
        option = message.split(":", 1)[1].split(";")[0].split()[0]
        return f"sbatch: unrecognized option '{option}'\nTry \"sbatch --help\" for more information"
    return f"sbatch: error: {message}"


def _wait(api, job_id: int, *, is_array: bool) -> int:  # noqa: ANN001 - an ApiClient
    """-W: block until the job (every task of an array) ends: its exit code, 1 when a signal ended it;
    for an array the highest."""
    while True:
        tasks = api.all_jobs({"job": [str(job_id)]}) if is_array else [api.job(job_id)]
        if all(task["state"] not in common.ACTIVE_STATES for task in tasks):
            return max(_exit_code(task) for task in tasks)
        time.sleep(WAIT_POLL_S)


def _exit_code(job: dict) -> int:
    if job.get("signal"):
        return 1
    return job["return_code"] if job.get("return_code") is not None else 1
