"""The executor: the body of each job's Ray task, run on the job's node.

It knows no database, no Redis, no scheduler, and imports only the standard library (and its
own modules), so it is the same code whatever runs it.

- ``report``: what it is asked (``RunRequest``) and what it answers (``RunReport``, with an
  ``EndCause``);
- ``run``: ``run_job``, one attempt from launch to its end, limits enforced;
- ``group``: the job's process group: signals, memory sampling;
- ``control``: the channel an attempt's keeper stops and signals it through;
- ``orphans``: killing what an attempt left behind when its worker died without clean-up.
"""

from conductor.executor.report import EndCause, RunReport, RunRequest
from conductor.executor.run import DEFAULT_PATH, run_job, warm_up

__all__ = ["DEFAULT_PATH", "EndCause", "RunReport", "RunRequest", "run_job", "warm_up"]
