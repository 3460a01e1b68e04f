"""``conductor``: a Slurm-like command line for a Ray-backed batch system.

Examples::

    conductor up                         # API + scheduler on the embedded default
    conductor worker                     # scheduler only (WORKER_BURST=true: until drained)
    conductor submit job.sh -c 4 --mem 8G
    conductor show 42
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from cli import client as api_client
from conductor import units
from conductor.config import Settings, load_settings
from conductor.exceptions import ConductorError

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


@app.command()
def submit(
    ctx: typer.Context,
    script: Optional[Path] = typer.Argument(None, help="Batch script; read from stdin when omitted or '-'."),
    args: Optional[list[str]] = typer.Argument(None, help="Arguments passed to the script."),
    job_name: Optional[str] = typer.Option(None, "-J", "--job-name", help="Job name (default: script name)."),
    account: str = typer.Option("", "-A", "--account", help="Account to charge."),
    partition: Optional[str] = typer.Option(None, "-p", "--partition", help="Partition."),
    cpus_per_task: int = typer.Option(1, "-c", "--cpus-per-task", help="CPUs per task."),
    ntasks_per_node: int = typer.Option(1, "--ntasks-per-node", help="Tasks per node."),
    mem: Optional[str] = typer.Option(None, "--mem", help="Memory per node: 8G, 512M (default unit MB)."),
    time: Optional[str] = typer.Option(None, "-t", "--time", help="Time limit: min, h:m:s, d-h:m:s; 0 = none."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="stdout file pattern (%j %x %u %%)."),
    error: Optional[str] = typer.Option(None, "-e", "--error", help="stderr file pattern."),
    chdir: Optional[Path] = typer.Option(None, "-D", "--chdir", help="Working directory (default: here)."),
    parsable: bool = typer.Option(False, "--parsable", help="Print only the job id."),
) -> None:
    """Submit a batch script, like sbatch.  Prints "Submitted batch job ID".

    Example: conductor submit train.sh -c 4 --mem 8G -t 1:00:00 -J train
    """
    text, name = _read_script(script)
    job = {"name": job_name or name, "account": account, "cpus_per_task": cpus_per_task,
           "ntasks_per_node": ntasks_per_node, "argv": list(args or []), "user": getpass.getuser(),
           "current_working_directory": str((chdir or Path.cwd()).resolve()), "environment": dict(os.environ)}
    optional = {"partition": partition, "memory_per_node": mem, "time_limit": time, "standard_output": output,
                "standard_error": error}
    job.update({key: value for key, value in optional.items() if value is not None})
    _check_local(mem, time)
    reply = _call(lambda c: c.submit({"job": job, "script": text}), ctx)
    typer.echo(str(reply["job_id"]) if parsable else f"Submitted batch job {reply['job_id']}")


@app.command()
def show(
    ctx: typer.Context,
    job_id: int = typer.Argument(..., help="Job id."),
    as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
) -> None:
    """Show every field of a job, like scontrol show job.

    Example: conductor show 42 --json
    """
    job = _call(lambda c: c.job(job_id), ctx)
    if as_json:
        typer.echo(json.dumps(job, indent=2))
        return
    for key, value in job.items():
        typer.echo(f"{key}={'' if value is None else value}")


def _read_script(script: Optional[Path]) -> tuple[str, str]:
    if script is None or str(script) == "-":
        return sys.stdin.read(), "sbatch"
    try:
        return script.read_text(encoding="utf-8"), script.name
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read script {script}: {exc}")
        raise AssertionError  # unreachable: fail() exits


def _check_local(mem: Optional[str], time: Optional[str]) -> None:
    """Catch malformed sizes and times before any request is sent."""
    for flag, value, parse in (("--mem", mem, units.parse_memory_mb), ("--time", time, units.parse_time_limit_s)):
        if value is None:
            continue
        try:
            parse(value)
        except ValueError as exc:
            fail(f"{flag}: {exc}")


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
