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
from typing import Optional

import typer

from cli import client as api_client
from cli import sbatch
from conductor.config import Settings, load_settings
from conductor.exceptions import ConductorError

#: How often ``submit --wait`` asks for the job's state.
WAIT_POLL_S = 0.5

app = typer.Typer(
    name="conductor", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="conductor: submit batch scripts Slurm-style; they run as Ray tasks on your nodes.")


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj["settings"]


def fail(message: str, code: int = 1) -> None:
    """One line on stderr and a non-zero exit; never a traceback."""
    typer.echo(f"conductor: error: {message}", err=True)
    raise typer.Exit(code)


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="Configuration file (default ./app.properties)."),
) -> None:
    try:
        ctx.obj = {"settings": load_settings(config)}
    except ConductorError as exc:
        fail(str(exc), code=2)


@app.command()
def up(ctx: typer.Context) -> None:
    """Run the REST API and the scheduler together (SQLite and a local Ray by default).

    Example: conductor up   (then: conductor submit job.sh)
    """
    from cli import daemon

    daemon.run_up(_settings(ctx))


@app.command()
def worker(ctx: typer.Context) -> None:
    """Run the scheduler: start or attach to Ray and consume the queue until interrupted.

    WORKER_BURST=true exits once the queue is empty and nothing runs.
    Example: WORKER_CONCURRENCY=1 conductor worker
    """
    from cli import daemon

    daemon.run_worker(_settings(ctx))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "help_option_names": []}, add_help_option=False)
def submit(ctx: typer.Context) -> None:
    """Submit a batch script, like sbatch (conductor submit --help lists the options).

    Example: conductor submit train.sh -c 4 --mem 8G -t 1:00:00 -J train
    """
    try:
        submission = sbatch.parse(list(ctx.args))
    except sbatch.HelpRequested as help_text:
        typer.echo(str(help_text), nl=False)
        return
    except sbatch.UsageError as exc:
        fail(str(exc), code=2)
    reply = _call(lambda c: c.submit(submission.body), ctx)
    job_id = reply["job_id"]
    typer.echo(str(job_id) if submission.parsable else f"Submitted batch job {job_id}")
    if submission.wait:
        raise typer.Exit(_wait_for_exit_code(ctx, job_id))


def _wait_for_exit_code(ctx: typer.Context, job_id: int) -> int:
    """sbatch --wait: block until the job ends; its exit code, 1 when a signal ended it."""
    while True:
        job = _call(lambda c: c.job(job_id), ctx)
        if job["state"] not in ("PENDING", "RUNNING"):
            if job["signal"]:
                return 1
            return job["return_code"] if job["return_code"] is not None else 1
        time.sleep(WAIT_POLL_S)


def _call(action, ctx: typer.Context):  # noqa: ANN001, ANN202
    try:
        return action(api_client.ApiClient(_settings(ctx)))
    except api_client.ClientError as exc:
        fail(str(exc))


def main() -> None:
    """Entry point: every failure is one line on stderr and a non-zero exit."""
    try:
        app(standalone_mode=True)
    except ConductorError as exc:
        typer.echo(f"conductor: error: {_one_line(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:  # the last resort: no traceback for the user, the type says where to look
        typer.echo(f"conductor: error: {type(exc).__name__}: {_one_line(exc)}", err=True)
        sys.exit(1)


def _one_line(exc: BaseException) -> str:
    """The first line of the error; for an error raised inside a Ray actor, its original cause."""
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError wraps the remote exception
    if isinstance(cause, BaseException):
        exc = cause
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


from cli import admin  # noqa: E402,F401  registers token create/revoke
from cli import control  # noqa: E402,F401  registers cancel/hold/release/requeue
from cli import query  # noqa: E402,F401  registers queue/history/show/logs (they use app, fail and _call)
