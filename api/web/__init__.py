"""The queue's web page: read-only HTML at ``/`` (queue), ``/web/nodes`` and ``/web/jobs/{id}``.

The pages are served here and filled in by a little JavaScript (``static/``) from the API's own
routes (``/api/jobs``, ``/api/jobs/{id}``, its ``output/follow`` events, ``/api/nodes``,
``/api/partitions``, ``/api/queue``), so they show exactly what the API lets the viewer see.  With
AUTH=token the viewer signs in with an API token, which ``/web/login`` keeps in an HttpOnly,
SameSite=Strict cookie that the API's caller dependency accepts on reads (``api.deps.SESSION_COOKIE``):
an EventSource cannot send an Authorization header.
"""

from api.web.routes import WebOptions, install

__all__ = ["WebOptions", "install"]
