"""``conductor queue``, ``history``, ``show`` and ``logs``: squeue, sacct, scontrol show job, and a job's output.

Every command asks the REST API (cli/client.py; URL from the configuration or CONDUCTOR_URL)
and renders with cli/render.py.  Registered on ``cli.app.app`` when cli/main.py imports this.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

import click

from cli import render
from cli.app import Command, app, call, fail
from conductor.jobs import JobState, parse_job_ref

if TYPE_CHECKING:
    from cli.client import ApiClient

#: ``logs -f`` follows GET /api/jobs/{id}/output/follow (Server-Sent Events); when the stream ends
#: without its end event (the API restarted), it connects again after this many seconds ...
FOLLOW_RETRY_S = 0.5
#: ... up to this many times in a row without receiving anything.
FOLLOW_RETRIES = 5
ACTIVE_STATES = [JobState.PENDING.value, JobState.RUNNING.value]
FINISHED_STATES = [state.value for state in JobState if state.is_terminal()]
_BY_SHORT_CODE = {state.short: state.value for state in JobState}


class _OneLineErrors(Command):
    """A bad option or argument is one ``conductor: error:`` line (exit 2), not a usage block."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            fail(f"{_usage_message(exc)} (see: conductor {self.name} --help)", code=2)


def _usage_message(exc: click.UsageError) -> str:
    if isinstance(exc, click.NoSuchOption):  # "No such option: --colour", as conductor has always said it
        maybe = f" (did you mean {' or '.join(exc.possibilities)}?)" if exc.possibilities else ""
        return f"No such option: {exc.option_name}{maybe}"
    return exc.format_message()


# -- shared options ---------------------------------------------------------------------------

_USER = click.option("-u", "--user", help="Only these users' jobs (comma list).")
_ACCOUNT = click.option("-A", "--account", help="Only these accounts (comma list).")
_PARTITION = click.option("-p", "--partition", help="Only these partitions (comma list).")
_NAME = click.option("-n", "--name", help="Only jobs with these names (comma list).")
_JOBS = click.option("-j", "--jobs", help="Only these job ids (comma list).")
_NOHEADER = click.option("--noheader", is_flag=True, help="No header line.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the API's job objects as JSON.")
_JOB_ID = click.argument("job_id", metavar="job_id")  # 42, or 40_2 (checked by _job_ref)


def _split(text: Optional[str]) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _states(text: str) -> list[str]:
    """``-t``: state names or squeue's codes (``PD,R``), any case; ``all`` -> every state."""
    names = [_BY_SHORT_CODE.get(part.upper(), part.upper()) for part in _split(text)]
    return [] if "ALL" in names else names  # an unknown name is refused by the API, naming it


def _job_ids(text: Optional[str]) -> list[str]:
    """-j: job ids as Slurm names them (42: an array's id means all its tasks; 40_2: one task)."""
    ids = _split(text)
    try:
        return [str(parse_job_ref(part)) for part in ids]
    except ValueError:
        fail(f"-j/--jobs: {text!r} is not a comma list of job ids (42, 40_2)", code=2)
        raise


def _filters(user: Optional[str], account: Optional[str], partition: Optional[str], name: Optional[str],
             jobs: Optional[str]) -> dict[str, Any]:
    """Query parameters of GET /api/jobs for the common filter options."""
    params = {"user": _split(user), "account": _split(account), "partition": _split(partition),
              "name": _split(name), "job": _job_ids(jobs)}
    return {key: value for key, value in params.items() if value}


#: Jobs per request when listing; the first request asks for FIRST_PAGE_SIZE, so that the first
#: rows print after one small request, whatever the depth of the queue, and each later page is
#: three times the one before, up to PAGE_SIZE (``conductor queue | head`` reads 100 + 300 rows).
PAGE_SIZE, FIRST_PAGE_SIZE = 1000, 100


def _list(ctx: click.Context, params: dict, headers: Any, row: Any, right: Any, *, as_json: bool,
          header: bool) -> None:
    """Print every matching job as JSON, or as a table page by page (PAGE_SIZE jobs a request).

    A table of more than one page is printed as its pages come, in plain columns sized by the
    first page, so ``conductor queue | head`` answers at once whatever the depth of the queue.
    """
    if as_json:
        _print_json({"jobs": call(lambda client: client.all_jobs(params, page_size=PAGE_SIZE), ctx)})
        return
    now = datetime.now(timezone.utc)

    def show(client: Any) -> None:
        pages = client.job_pages(params, page_size=PAGE_SIZE, first_page_size=FIRST_PAGE_SIZE)
        found, more = next(pages)
        first = [row(job, now) for job in found]
        if not more:  # one page: a table fitted to it (rich on a terminal)
            render.print_table(headers, first, right=right, header=header)
            return
        widths = render.column_widths(headers, first)  # printed before the next page is asked for
        for number, rows in enumerate(itertools.chain([first], ([row(job, now) for job in page]
                                                                for page, _ in pages))):
            text = render.plain_table(headers, rows, right=right, header=header and number == 0, widths=widths)
            if text:
                click.echo(text)

    try:
        call(show, ctx)
    except BrokenPipeError:  # the reader (head) has what it wanted
        sys.stdout = None  # type: ignore[assignment] - nothing more to flush at exit
        raise SystemExit(0) from None


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


# -- queue --------------------------------------------------------------------------------------

@app.command(cls=_OneLineErrors)
@_USER
@_ACCOUNT
@_PARTITION
@click.option("-t", "--states", help="States (comma list of names or codes: PD,R,CD,F,CA,TO,OOM,NF) or 'all'. "
                                     "Default: PENDING,RUNNING (all with -j).")
@_JOBS
@_NAME
@_NOHEADER
@_JSON
@click.option("--dependency", is_flag=True, help="Add a DEPENDENCY column (squeue's %E): afterok:40_*(unfulfilled).")
@click.pass_context
def queue(ctx: click.Context, user: Optional[str], account: Optional[str], partition: Optional[str],
          states: Optional[str], jobs: Optional[str], name: Optional[str], noheader: bool, as_json: bool,
          dependency: bool) -> None:
    """List pending and running jobs, like squeue.

    conductor queue [-u USERS] [-A ACCOUNTS] [-p PARTITIONS] [-t STATES|all] [-j IDS] [-n NAMES] [--dependency]
    [--json]

    TIME is the time run so far; NODE(REASON) is the node, or (Reason) while the job waits.
    DEPENDENCY is what the job still waits for, each part (unfulfilled) or (failed); (null) when nothing.

    Example: conductor queue -u alice -t PD,R
    """
    params = _filters(user, account, partition, name, jobs)
    state_names = _states(states) if states is not None else ([] if jobs else ACTIVE_STATES)
    if state_names:
        params["state"] = state_names
    headers, row = ((render.QUEUE_DEPENDENCY_HEADERS, render.queue_row_with_dependency) if dependency
                    else (render.QUEUE_HEADERS, render.queue_row))
    _list(ctx, params, headers, row, render.QUEUE_RIGHT, as_json=as_json, header=not noheader)


# -- history ------------------------------------------------------------------------------------

def _when(text: Optional[str], flag: str) -> Optional[str]:
    """A --since/--until value (local time unless it has an offset; or 'now') as ISO 8601 UTC."""
    if text is None:
        return None
    try:
        moment = datetime.now() if text.strip().lower() == "now" else datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"{flag}: {text!r} is not a time: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or now", code=2)
    return moment.astimezone(timezone.utc).isoformat()  # a naive time is taken as local time


def _midnight_today() -> str:
    return datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0).isoformat()


@app.command(cls=_OneLineErrors)
@_USER
@_ACCOUNT
@_PARTITION
@click.option("-s", "-t", "--state", "states",
              help="Final states (comma list: CD,F,CA,TO,OOM,NF or names). Default: all of them.")
@_JOBS
@_NAME
@click.option("-S", "--since", "--starttime", "since",
              help="Jobs that ended at or after this local time. Default: midnight today (no limit with -j).")
@click.option("-E", "--until", "--endtime", "until",
              help="Jobs that ended at or before this local time. Default: now.")
@_NOHEADER
@_JSON
@click.pass_context
def history(ctx: click.Context, user: Optional[str], account: Optional[str], partition: Optional[str],
            states: Optional[str], jobs: Optional[str], name: Optional[str], since: Optional[str],
            until: Optional[str], noheader: bool, as_json: bool) -> None:
    """List finished jobs with their exit codes and resource use, like sacct.

    conductor history [-S SINCE] [-E UNTIL] [-u USERS] [-A ACCOUNTS] [-p PARTS] [-s STATES] [-j IDS] [--json]

    SINCE, UNTIL: local time, 2026-11-28 or 2026-11-28T10:00. The window is on the jobs' end times.

    CPUTime is Elapsed x AllocCPUS and TotalCPU is user + system CPU time, as in sacct.

    Example: conductor history --since 2026-11-28 -u alice
    """
    params = _filters(user, account, partition, name, jobs)
    state_names = _states(states) if states is not None else []
    unfinished = [state for state in state_names if state in ACTIVE_STATES]
    if unfinished:
        fail(f"--state: history lists finished jobs; {','.join(unfinished)} jobs are shown by conductor queue",
             code=2)
    params["state"] = state_names or FINISHED_STATES
    window = {"ended_since": _when(since, "--since") or (None if jobs else _midnight_today()),
              "ended_until": _when(until, "--until")}
    params.update({key: value for key, value in window.items() if value})
    _list(ctx, params, render.HISTORY_HEADERS, render.history_row, render.HISTORY_RIGHT, as_json=as_json,
          header=not noheader)


# -- partitions ---------------------------------------------------------------------------------

@app.command(cls=_OneLineErrors)
@_NOHEADER
@_JSON
@click.pass_context
def partitions(ctx: click.Context, noheader: bool, as_json: bool) -> None:
    """List partitions with their nodes, CPUs and memory, like sinfo.

    conductor partitions [--noheader] [--json]

    CPUS(A/I/T) is allocated/idle/total; MEMORY(A/T) allocated/total; JOBS(R/PD) running/pending;
    TIMELIMIT is the partition's MaxTime; * marks the default partition.

    Example: conductor partitions
    """
    found = call(lambda client: client.partitions(), ctx)
    if as_json:
        _print_json({"partitions": found})
        return
    render.print_table(render.PARTITION_HEADERS, [render.partition_row(p) for p in found],
                       right=render.PARTITION_RIGHT, header=not noheader)


# -- show ---------------------------------------------------------------------------------------

@app.command(cls=_OneLineErrors)
@_JOB_ID
@click.option("-o", "--oneliner", is_flag=True, help="All fields on one line.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's job object as JSON.")
@click.pass_context
def show(ctx: click.Context, job_id: str, oneliner: bool, as_json: bool) -> None:
    """Show every field of a job as Key=Value, like scontrol show job.

    conductor show JOBID [-o] [--json]

    Example: conductor show 42
    """
    job = call(lambda client: client.job(_job_ref(job_id)), ctx)
    if as_json:
        _print_json(job)
        return
    click.echo(render.show_text(job, datetime.now(timezone.utc), one_line=oneliner))


# -- logs ---------------------------------------------------------------------------------------

@app.command(cls=_OneLineErrors)
@_JOB_ID
@click.option("--err", is_flag=True, help="Print stderr (the stdout file when the job has no -e).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the job ends (streamed by the API).")
@click.pass_context
def logs(ctx: click.Context, job_id: str, err: bool, follow: bool) -> None:
    """Print a job's output; with -f follow it until the job ends, like tail -f.

    conductor logs JOBID [--err] [-f]

    The API reads the file on its own host: jobs of other nodes need a shared output directory.

    Example: conductor logs 42 -f
    """
    stream = "stderr" if err else "stdout"
    ref = _job_ref(job_id)
    call(lambda client: _print_output(client, ref, stream, follow=follow), ctx)  # ^C: exit 130 (cli.app)


def _job_ref(text: str) -> str:
    """A job id as typed (42, 40_2), checked: ``int()`` would read 42420_4 as 424204."""
    try:
        return str(parse_job_ref(text))
    except ValueError as exc:
        fail(str(exc), code=2)
        raise


def _print_output(client: ApiClient, job_id: str, stream: str, *, follow: bool) -> None:
    """Read the file from the start; with ``follow`` keep reading until the job is final and all is read."""
    if follow:
        _follow_output(client, job_id, stream)
        return
    offset = 0
    while True:
        text, headers = client.output(job_id, {"stream": stream, "offset": offset})
        size = int(headers["x-conductor-output-size"])
        if size < offset:  # the file was started again (the job was requeued and ran again)
            click.echo(f"conductor: note: job {job_id}'s {stream} was truncated; reading it from the start",
                       err=True)
            offset = 0
            continue
        _write(text)
        offset = int(headers["x-conductor-output-next-offset"])
        if not (text and offset < size):  # else more is there already
            return


def _follow_output(client: ApiClient, job_id: str, stream: str) -> None:
    """Print the output events of the follow stream until its end event (the job is final, all is sent)."""
    offset, retries = 0, 0
    while True:
        for event, data, event_id in client.follow_output(job_id, {"stream": stream, "offset": offset}):
            retries = 0
            if event == "end":
                return
            if event == "truncated":  # the file was started again (the job was requeued and ran again)
                click.echo(f"conductor: note: job {job_id}'s {stream} was truncated; reading it from the start",
                           err=True)
            elif event == "message":
                _write(json.loads(data))
            offset = int(event_id) if event_id is not None else offset
        retries += 1
        if retries > FOLLOW_RETRIES:
            from cli.client import ClientError

            raise ClientError(f"the API keeps closing the output stream of job {job_id}")
        time.sleep(FOLLOW_RETRY_S)


def _write(text: str) -> None:
    if text:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.buffer.flush()
