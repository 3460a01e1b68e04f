"""A job's task in the Ray dashboard.

The dashboard shows a task at ``<dashboard>/#/jobs/<Ray job id>/tasks/<task id>``.  conductor keeps
neither id: the task is found by its name (the scheduler names each job's task ``<job id>:<job
name>``) through Ray's state API, which the dashboard serves.  The dashboard is asked by its URL:
without an address, Ray's client attaches to the newest Ray cluster on the host, which need not be
ours.  With Ray's token authentication on, the dashboard asks the browser for Ray's token itself.
"""

from __future__ import annotations

import logging

from conductor import jobs

log = logging.getLogger(__name__)

#: Seconds Ray's state API may take to answer before the link is given up.
LOOKUP_TIMEOUT_S = 5


def task_name(job: jobs.Job) -> str:
    """The name the scheduler's dispatch gives the job's Ray task (each attempt's task has it)."""
    return f"{job.id}:{job.spec.name}"


def task_page(dashboard_url: str, job: jobs.Job) -> str | None:
    """The dashboard's page of the job's latest task, or None when Ray does not know one."""
    from ray.util.state import list_tasks

    try:
        tasks = list_tasks(address=dashboard_url, filters=[("name", "=", task_name(job))], detail=True, limit=100,
                           timeout=LOOKUP_TIMEOUT_S, raise_on_missing_output=False)
    except Exception:  # noqa: BLE001 - Ray's dashboard down or slow: no link, the page says so
        log.warning("cannot look up job %s's Ray task", job.id, exc_info=True)
        return None
    if not tasks:
        return None
    latest = max(tasks, key=lambda task: task.creation_time_ms or 0)  # a requeued job has one per attempt
    return f"{dashboard_url.rstrip('/')}/#/jobs/{latest.job_id}/tasks/{latest.task_id}"
