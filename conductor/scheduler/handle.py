"""Is the scheduler reachable from this process?  For the API's health and readiness reports."""

from __future__ import annotations

import ray

from conductor.config import Settings

#: How long a health check waits for the scheduler actor to answer.
ANSWER_TIMEOUT_S = 2.0
NOT_CHECKED = "not checked (this API runs without a scheduler of its own)"


def scheduler_status(settings: Settings, *, check: bool) -> tuple[bool | None, str]:
    """(True, summary) when the scheduler answers; (False, why) when it does not or Ray is gone;
    (None, NOT_CHECKED) when this API was started without one (``check`` false)."""
    if not check:
        return None, NOT_CHECKED
    if not ray.is_initialized():
        return False, "unavailable: this process lost its Ray connection"
    from conductor.scheduler import ACTOR_NAME

    try:
        actor = ray.get_actor(ACTOR_NAME, namespace=settings.ray_namespace)
        info = ray.get(actor.describe.remote(), timeout=ANSWER_TIMEOUT_S)
    except Exception as exc:  # any Ray failure means: not available now
        return False, f"unavailable: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc) else ''}"
    return True, f"ok: {len(info['nodes'])} node(s), {info['pending']} pending, {info['running']} running"
