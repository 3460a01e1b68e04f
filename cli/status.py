"""``conductor status``: the service at a glance, like Slurm's sdiag plus ``sinfo -s``.

It asks ``GET /api/status`` (cli/client.py) and prints it as text, or as the API's JSON with
``--json``.  Exit status: 0 when the database, the queue and the scheduler answer; 3 when the
API answered but one of them did not (so scripts can alert on it); 1 when the API cannot be reached.
"""

from __future__ import annotations

import json
from typing import Any

import click

from cli import render
from cli.app import Command, app, call

#: Exit status when the API answered but a component is unavailable.
DEGRADED_EXIT = 3


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else render.squeue_time(value)


def healthy(found: dict[str, Any]) -> bool:
    """The database and the queue answer, and the scheduler too (unless this API runs without one)."""
    components = found.get("components", {})
    return (components.get("database") == components.get("queue") == "ok"
            and found.get("scheduler", {}).get("answers") is not False)


def _scheduler_lines(scheduler: dict[str, Any], lease: dict[str, Any] | None) -> list[str]:
    answers = {True: "answers", False: "does not answer", None: "not asked (this API runs without one)"}
    lines = [f"Scheduler:          {answers[scheduler.get('answers')]}"]
    if scheduler.get("started_at"):
        lines.append(f"  Started:          {render.local_time(scheduler['started_at'])} "
                     f"(up {render.squeue_time(scheduler.get('uptime_s') or 0)})")
        lines.append(f"  Passes:           {scheduler.get('passes_total')} in all, "
                     f"{scheduler.get('passes_per_minute')} in the last minute")
        lines.append(f"  Last pass:        {_seconds(scheduler.get('last_pass_duration_s'))}"
                     + (f" at {render.local_time(scheduler['last_pass_at'])}" if scheduler.get("last_pass_at") else ""))
        lines.append(f"  Last full pass:   {_seconds(scheduler.get('last_full_pass_duration_s'))}")
        lines.append(f"  Pass p95:         <= {_seconds(scheduler.get('pass_duration_p95_s'))}; submit to start "
                     f"p95 <= {_seconds(scheduler.get('submit_to_start_p95_s'))}")
        lines.append(f"  Loop lag:         {_seconds(scheduler.get('loop_lag_s'))}")
        lines.append(f"  Errors:           database {scheduler.get('database_errors')}, "
                     f"queue {scheduler.get('queue_errors')}")
    elif scheduler.get("answers") is False:
        lines.append(f"  Why:              {scheduler.get('detail')}")
    if lease is not None:
        held = {True: f"held by {lease.get('holder') or 'a process'}", False: "not held (no scheduler works on the "
                "database)", None: "unknown (this database cannot tell)"}
        lines.append(f"  Lease:            {held[lease.get('held')]}")
    return lines


def _queue_lines(queue: dict[str, Any] | None, nodes: dict[str, Any] | None) -> list[str]:
    if queue is None:
        return ["Jobs:               unknown (the database does not answer)"]
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(queue["pending_by_reason"].items()))
    lines = [f"Jobs:               {queue['pending']} pending{f' ({reasons})' if reasons else ''}, "
             f"{queue['running']} running"]
    oldest = queue.get("oldest_pending")
    if oldest:
        label = f"job {oldest['job_id']}" if oldest.get("job_id") is not None else "a job of another user"
        lines.append(f"  Oldest pending:   {label}, submitted {render.local_time(oldest['submit_time'])} "
                     f"({render.squeue_time(oldest['age_s'])} ago)")
    if nodes is not None:
        down = f" ({', '.join(nodes['names_down'])})" if nodes["names_down"] else ""
        lines.append(f"Nodes:              {nodes['alive']} up, {nodes['down']} down{down}")
    return lines


def status_text(found: dict[str, Any]) -> str:
    """The text of ``conductor status``: a few labelled lines, then the partitions (sinfo -s)."""
    components = found.get("components", {})
    lines = [f"conductor {found.get('version')}",
             *(f"{name.capitalize() + ':':<20}{components.get(name, '-')}" for name in ("database", "queue", "ray")),
             *_scheduler_lines(found.get("scheduler", {}), found.get("lease")),
             *_queue_lines(found.get("queue"), found.get("nodes"))]
    partitions = found.get("partitions")
    if partitions:
        rows = [[p["name"], p["state"], str(p["nodes"]), f"{p['cpus_allocated']}/{p['cpus_idle']}/{p['cpus_total']}",
                 f"{p['running_jobs']}/{p['pending_jobs']}"] for p in partitions]
        lines += ["", render.plain_table(("PARTITION", "AVAIL", "NODES", "CPUS(A/I/T)", "JOBS(R/PD)"), rows,
                                         right=frozenset({"NODES"}))]
    return "\n".join(lines)


@app.command(cls=Command)
@click.option("--json", "as_json", is_flag=True, help="Print the API's status object as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the service's state: scheduler, lease, queue, nodes, partitions, health (sdiag + sinfo -s).

    conductor status [--json]

    Exit status 0 when the database, the queue and the scheduler answer, 3 when one does not.

    Example: conductor status --json | jq .queue.pending
    """
    found = call(lambda client: client.status(), ctx)
    click.echo(json.dumps(found, indent=2) if as_json else status_text(found))
    if not healthy(found):
        raise click.exceptions.Exit(DEGRADED_EXIT)
