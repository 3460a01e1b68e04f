"""A small REST client for the CLI: one error line per failure, never a traceback.

Built on the standard library's http.client, one keep-alive connection per client: a
command starts in a fraction of the time that importing httpx takes (see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
from typing import Any, Iterator
from urllib.parse import urlencode, urlsplit

from conductor.properties import ClientConfig

#: Overrides the API URL from the configuration (like slurmrestd clients' SLURM_URL).
URL_ENV = "CONDUCTOR_URL"
#: The API token (overrides API_TOKEN from the configuration).
TOKEN_ENV = "CONDUCTOR_TOKEN"
#: ``follow_output``'s read timeout: the server sends a keepalive after 15 s of silence.
FOLLOW_READ_TIMEOUT_S = 60.0
#: What can go wrong between here and the API (refused, reset, timed out, a broken reply).
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


class ClientError(Exception):
    """A request failed; the message is one line for the user."""


class ApiClient:
    """JSON over HTTP to the conductor API."""

    def __init__(self, config: ClientConfig, *, timeout_s: float = 30.0) -> None:
        self.base_url = (os.environ.get(URL_ENV) or config.api_url).rstrip("/")
        token = os.environ.get(TOKEN_ENV) or config.api_token
        self._headers = {"User-Agent": "conductor-cli", "Accept": "*/*"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/api/jobs/submit", body=body)

    def control(self, job_id: int, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /api/jobs/{id}/{cancel|hold|release|requeue}."""
        return self._request("POST", f"/api/jobs/{job_id}/{action}", params=params)

    def job(self, job_id: int) -> dict[str, Any]:
        return self._request("GET", f"/api/jobs/{job_id}")

    def status(self) -> dict[str, Any]:
        """GET /api/status: the scheduler, lease, queue, nodes, partitions and components."""
        return self._request("GET", "/api/status")

    def partitions(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/partitions")["partitions"]

    def list_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of ``GET /api/jobs``: ``{"jobs": [...], "next_cursor": int | None}``."""
        return self._request("GET", "/api/jobs", params=params)

    def all_jobs(self, params: dict[str, Any], *, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every job matching ``params``, following next_cursor page by page."""
        return [job for page, _ in self.job_pages(params, page_size=page_size) for job in page]

    def job_pages(self, params: dict[str, Any], *, page_size: int = 1000,
                  first_page_size: int | None = None) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """The jobs matching ``params``, one page at a time as the API serves them (next_cursor),
        each with whether another page follows.  The first page may be smaller, so that its rows
        come sooner; the pages then grow threefold up to ``page_size``."""
        cursor, size = None, first_page_size or page_size
        while True:
            query = {**params, "limit": size} if cursor is None else {**params, "limit": size, "cursor": cursor}
            page = self.list_jobs(query)
            cursor = page.get("next_cursor")
            yield page["jobs"], cursor is not None
            if cursor is None:
                return
            size = min(page_size, 3 * size)

    def output(self, job_id: int, params: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """``GET /api/jobs/{id}/output``: the text and the X-Conductor-* headers (lower-case names)."""
        path = f"/api/jobs/{job_id}/output"
        with self._reaching():
            response = self._send("GET", path, params=params)
            data = response.read()
        if not 200 <= response.status < 300:
            self._raise_for(response.status, data, path)
        headers = {k.lower(): v for k, v in response.getheaders() if k.lower().startswith("x-conductor-")}
        return data.decode(response.headers.get_content_charset() or "utf-8", errors="replace"), headers

    def follow_output(self, job_id: int, params: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
        """``GET /api/jobs/{id}/output/follow``: its Server-Sent Events as (event, data, id) while they come.

        ``event`` is "message" for output (data: a JSON string), "truncated" or "end"; ``id`` is the
        last id received (the offset to resume from).  Ends when the server closes the stream.
        """
        path = f"/api/jobs/{job_id}/output/follow"
        try:
            with self._reaching():
                response = self._send("GET", path, params=params, accept="text/event-stream",
                                      read_timeout_s=FOLLOW_READ_TIMEOUT_S)
                if not 200 <= response.status < 300:
                    self._raise_for(response.status, response.read(), path)
                yield from _events(response)
        finally:
            self.close()  # the stream ended or was abandoned: this connection is not reusable

    def nodes(self) -> list[dict[str, Any]]:
        """``GET /api/nodes``: every node with its capacity and what is allocated."""
        return self._request("GET", "/api/nodes")["nodes"]

    def update_job(self, job_id: int | str, changes: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /api/jobs/{id}``: change a pending job (scontrol update); ``{"updated": [...]}``."""
        return self._request("PATCH", f"/api/jobs/{job_id}", body=changes)

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 body: dict[str, Any] | None = None) -> Any:
        with self._reaching():
            response = self._send(method, path, params=params, body=body)
            data = response.read()
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = {}
        if 200 <= response.status < 300:
            return decoded
        self._raise_for(response.status, data, path, decoded)

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None, accept: str | None = None,
              read_timeout_s: float | None = None) -> http.client.HTTPResponse:
        """Send one request on the kept-alive connection (a new one if the server closed it)."""
        connection = self._connected()
        if read_timeout_s is not None:
            connection.sock.settimeout(read_timeout_s)
        headers = dict(self._headers, **({"Accept": accept} if accept else {}))
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        target = self._prefix + path + (f"?{_query(params)}" if params else "")
        connection.request(method, target, body=payload, headers=headers)
        return connection.getresponse()

    def _connected(self) -> http.client.HTTPConnection:
        if self._connection is not None and self._connection.sock is not None and _closed_by_peer(self._connection):
            self.close()  # the server closed the idle connection (keep-alive timeout): open a new one
        if self._connection is None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ClientError(f"cannot reach the conductor API at {self.base_url}: "
                                  "the URL must be http://HOST[:PORT] or https://HOST[:PORT]")
            kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            self._connection = kind(parts.hostname, parts.port, timeout=self._timeout_s)
        if self._connection.sock is None:
            self._connection.connect()
        self._connection.sock.settimeout(self._timeout_s)
        return self._connection

    @property
    def _prefix(self) -> str:
        return urlsplit(self.base_url).path.rstrip("/")

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """Turn a transport failure into ClientError ("cannot reach ...") and drop the broken connection."""
        try:
            yield
        except _TRANSPORT_ERRORS as exc:
            self.close()
            reason = str(exc) or type(exc).__name__
            raise ClientError(f"cannot reach the conductor API at {self.base_url}: {reason}") from None

    def _raise_for(self, status: int, data: bytes, path: str, decoded: Any = None) -> None:
        """Raise ClientError with the API's one-line message for an error response."""
        if decoded is None:
            try:
                decoded = json.loads(data)
            except ValueError:
                decoded = {}
        error = decoded.get("error", {}) if isinstance(decoded, dict) else {}
        message = error.get("message") if isinstance(error, dict) else None
        raise ClientError(message or f"HTTP {status} from {self.base_url}{path}")


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection is readable: the server closed it (or broke protocol)."""
    readable, _, _ = select.select([connection.sock], [], [], 0)
    return bool(readable)


def _query(params: dict[str, Any]) -> str:
    """Query text: a list value repeats its key; booleans as true/false, as the API reads them."""
    pairs = []
    for key, value in params.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            pairs.append((key, "true" if item is True else "false" if item is False else "" if item is None
                          else str(item)))
    return urlencode(pairs)


def _events(response: http.client.HTTPResponse) -> Iterator[tuple[str, str, str | None]]:
    """Parse a text/event-stream body into (event, data, last id) as each event completes."""
    event, data, last_id = "message", [], None
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:  # an event is complete
            if data:
                yield event, "\n".join(data), last_id
            event, data = "message", []
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            last_id = value  # (a line starting with ':' is a comment: the name is empty)
