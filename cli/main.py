"""``conductor``: a Slurm-like command line for a Ray-backed batch system.

Examples::

    conductor up                         # API + scheduler on the embedded default
    conductor worker                     # scheduler only (WORKER_BURST=true: until drained)
    conductor submit job.sh -c 4 --mem 8G
    conductor show 42
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from cli.app import app, call, fail, settings
from conductor.exceptions import ConductorError

#: How often ``submit --wait`` asks for the job's state.
WAIT_POLL_S = 0.5


@app.command()
@click.pass_context
def up(ctx: click.Context) -> None:
    """Run the REST API and the scheduler together (SQLite and a local Ray by default).

    Example: conductor up   (then: conductor submit job.sh)
    """
    from cli import daemon

    daemon.run_up(settings(ctx))


@app.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run the scheduler: start or attach to Ray and consume the queue until interrupted.

    WORKER_BURST=true exits once the queue is empty and nothing runs.
    Example: WORKER_CONCURRENCY=1 conductor worker
    """
    from cli import daemon

    daemon.run_worker(settings(ctx))


@app.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop everything: the service, running jobs (back to PENDING; CANCELLED with --no-requeue),
    the keepers and conductor's own local Ray.

    `conductor up` stopped with SHUTDOWN_RUNNING_JOBS=keep (the default) leaves running jobs and
    the local Ray up; this is the one command that ends them too.
    Example: conductor down
    """
    from cli import daemon

    daemon.run_down(settings(ctx))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "help_option_names": []}, add_help_option=False)
@click.pass_context
def submit(ctx: click.Context) -> None:
    """Submit a batch script, like sbatch (conductor submit --help lists the options).

    Example: conductor submit train.sh -c 4 --mem 8G -t 1:00:00 -J train
    """
    from cli import sbatch  # argparse and the directive parser: only submit needs them

    try:
        submission = sbatch.parse(list(ctx.args))
    except sbatch.HelpRequested as help_text:
        click.echo(str(help_text), nl=False)
        return
    except sbatch.ScriptError as exc:
        fail(str(exc).replace("\n", " "))
    except sbatch.UsageError as exc:
        fail(str(exc), code=2)
    if submission.warning():
        click.echo(f"conductor: warning: {submission.warning()}", err=True)
    if submission.test_only:
        click.echo("conductor: --test-only: the options and the script are valid; nothing was submitted", err=True)
        return
    reply = call(lambda c: c.submit(submission.body), ctx)
    job_id = reply["job_id"]
    if not submission.quiet:
        click.echo(str(job_id) if submission.parsable else f"Submitted batch job {job_id}")
    if submission.wait:
        raise click.exceptions.Exit(_wait_for_exit_code(ctx, job_id))


@app.command("slurm-commands")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def slurm_commands(directory: Path) -> None:
    """Write Slurm's commands (sbatch squeue scancel sacct scontrol sinfo; srun in a job) into DIRECTORY.

    Opt-in, so they never shadow a real Slurm: put them first on PATH yourself.
    Example: conductor slurm-commands ~/.conductor/bin && export PATH=~/.conductor/bin:$PATH
    """
    from cli.slurm import write_commands

    written = write_commands(directory.expanduser())
    click.echo(f"wrote {' '.join(path.name for path in written)} into {directory}")
    click.echo(f"use them with: export PATH={directory.expanduser().resolve()}:$PATH")


def _wait_for_exit_code(ctx: click.Context, job_id: int) -> int:
    """sbatch --wait: block until the job ends; its exit code, 1 when a signal ended it."""
    while True:
        job = call(lambda c: c.job(job_id), ctx)
        if job["state"] not in ("PENDING", "RUNNING"):
            if job["signal"]:
                return 1
            return job["return_code"] if job["return_code"] is not None else 1
        time.sleep(WAIT_POLL_S)


def main() -> None:
    """Entry point: every failure is one line on stderr and a non-zero exit."""
    try:
        app.main(prog_name="conductor", standalone_mode=True)
    except ConductorError as exc:
        click.echo(f"conductor: error: {_one_line(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:  # the last resort: no traceback for the user, the type says where to look
        click.echo(f"conductor: error: {type(exc).__name__}: {_one_line(exc)}", err=True)
        sys.exit(1)


def _one_line(exc: BaseException) -> str:
    """The first line of the error; for an error raised inside a Ray actor, its original cause."""
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError wraps the remote exception
    if isinstance(cause, BaseException):
        exc = cause
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# The other commands, registered on cli.app.app in this order (the order of `conductor --help`).
from cli import control  # noqa: E402,F401  cancel/hold/release/requeue
from cli import query  # noqa: E402,F401  queue/history/partitions/show/logs
from cli import admin  # noqa: E402,F401  token create/revoke
from cli import status  # noqa: E402,F401  status (sdiag + sinfo -s)
