"""``conductor cancel|hold|release|requeue``: scancel and scontrol's job verbs, over the REST API."""

from __future__ import annotations

from typing import Optional, Sequence

import click

from cli.app import app, call, fail
from conductor.jobs import parse_job_ref


def _ids(values: Sequence[str]) -> list[str]:
    """Job ids as typed: ``42`` (``40``: a whole array) or ``40_3`` (one task), checked."""
    ids = []
    for value in values:
        try:
            ids.append(str(parse_job_ref(value)))
        except ValueError as exc:
            fail(str(exc), code=2)
    return ids


@app.command()
@click.argument("job_ids", nargs=-1, metavar="[job_ids]...")
@click.option("-s", "--signal", help="Send this signal (USR1, 10...) to running jobs; they go on.")
@click.option("-n", "--name", help="Only jobs with this name.")
@click.option("-t", "--state", help="Only jobs in this state (PENDING, RUNNING).")
@click.option("-A", "--account", help="Only jobs of this account.")
@click.option("-p", "--partition", help="Only jobs of this partition.")
@click.option("-u", "--user", help="Only jobs of this user.")
@click.pass_context
def cancel(ctx: click.Context, job_ids: tuple[str, ...], signal: Optional[str], name: Optional[str],
           state: Optional[str], account: Optional[str], partition: Optional[str], user: Optional[str]) -> None:
    """Cancel jobs, like scancel: pending ones end at once; running ones get SIGTERM, then SIGKILL.

    job_ids: an array's id cancels all its tasks.  Filters are ANDed with each other and with
    the ids.

    Examples: conductor cancel 42 43 | conductor cancel -u alice -t PENDING | conductor cancel -s USR1 42
    """
    filters = {"name": name, "state": state, "account": account, "partition": partition, "user": user}
    targets = _ids(job_ids)
    if any(value is not None for value in filters.values()):
        targets = _filtered(ctx, targets, filters)
    elif not targets:
        fail("name at least one job id or a filter", code=2)
    for job_id in targets:
        reply = call(lambda c, i=job_id: c.control(i, "cancel", {"signal": signal} if signal else None), ctx)
        done = reply["cancelled"] + reply["signalled"]
        if not done:
            click.echo(f"conductor: job {job_id} was not pending or running: nothing to do", err=True)


def _filtered(ctx: click.Context, ids: list[str], filters: dict) -> list[str]:
    states = [filters["state"].upper()] if filters["state"] else ["PENDING", "RUNNING"]
    params = {"state": states, **{k: v for k, v in filters.items() if v is not None and k != "state"}}
    if ids:
        params["job"] = ids
    return [job["display_id"] for job in call(lambda c: c.all_jobs(params), ctx)]


@app.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="job_ids...")
@click.pass_context
def hold(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Hold pending jobs (reason JobHeldUser) until released, like scontrol hold.

    Example: conductor hold 42
    """
    _each(ctx, job_ids, "hold", "held")


@app.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="job_ids...")
@click.pass_context
def release(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Release held jobs, like scontrol release.

    Example: conductor release 42
    """
    _each(ctx, job_ids, "release", "released")


@app.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="job_ids...")
@click.pass_context
def requeue(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Put jobs back in the queue, like scontrol requeue: running ones are stopped first.

    Example: conductor requeue 42
    """
    _each(ctx, job_ids, "requeue", "requeued")


def _each(ctx: click.Context, job_ids: Sequence[str], action: str, field: str) -> None:
    for job_id in _ids(job_ids):
        reply = call(lambda c, i=job_id: c.control(i, action), ctx)
        if not reply[field]:
            click.echo(f"conductor: job {job_id}: nothing to {action}", err=True)
