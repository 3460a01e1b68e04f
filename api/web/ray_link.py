"""A job's task in the Ray dashboard.

The dashboard shows a task at ``<dashboard>/#/jobs/<Ray job id>/tasks/<task id>``.  conductor keeps
neither id: the task is found by its name through Ray's state API (the scheduler names each job's
task ``<job id>:<job name>``), which only a process attached to Ray can ask (``conductor up``).
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
    import ray

    if not ray.is_initialized():  # an API not started by `conductor up` is not attached to Ray
        return None
    from ray.util.state import list_tasks

    try:
        tasks = list_tasks(filters=[("name", "=", task_name(job))], detail=True, limit=100,
                           timeout=LOOKUP_TIMEOUT_S, raise_on_missing_output=False)
    except Exception:  # noqa: BLE001 - Ray's dashboard down or slow: no link, the page says so
        log.warning("cannot look up job %s's Ray task", job.id, exc_info=True)
        return None
    if not tasks:
        return None
    latest = max(tasks, key=lambda task: task.creation_time_ms or 0)  # a requeued job has one per attempt
    return f"{dashboard_url.rstrip('/')}/#/jobs/{latest.job_id}/tasks/{latest.task_id}"
