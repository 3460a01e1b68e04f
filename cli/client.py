"""A small REST client for the CLI: one error line per failure, never a traceback."""

from __future__ import annotations

import os
from typing import Any, Iterator

import httpx

from conductor.config import Settings

#: Overrides the API URL from the configuration (like slurmrestd clients' SLURM_URL).
URL_ENV = "CONDUCTOR_URL"
#: The API token (overrides API_TOKEN from the configuration).
TOKEN_ENV = "CONDUCTOR_TOKEN"


class ClientError(Exception):
    """A request failed; the message is one line for the user."""


class ApiClient:
    """JSON over HTTP to the conductor API."""

    def __init__(self, settings: Settings, *, timeout_s: float = 30.0) -> None:
        self.base_url = (os.environ.get(URL_ENV) or settings.effective_api_url).rstrip("/")
        token = os.environ.get(TOKEN_ENV) or settings.api_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/api/jobs/submit", json=body)

    def control(self, job_id: int, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /api/jobs/{id}/{cancel|hold|release|requeue}."""
        return self._request("POST", f"/api/jobs/{job_id}/{action}", params=params or {})

    def job(self, job_id: int) -> dict[str, Any]:
        return self._request("GET", f"/api/jobs/{job_id}")

    def partitions(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/partitions")["partitions"]

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the conductor API at {self.base_url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_success:
            return body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise ClientError(error.get("message") or f"HTTP {response.status_code} from {self.base_url}{path}")

    def list_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of ``GET /api/jobs``: ``{"jobs": [...], "next_cursor": int | None}``."""
        return self._request("GET", "/api/jobs", params=params)

    def all_jobs(self, params: dict[str, Any], *, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every job matching ``params``, following next_cursor page by page."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, "limit": page_size} if cursor is None else {**params, "limit": page_size,
                                                                           "cursor": cursor}
            page = self.list_jobs(query)
            found.extend(page["jobs"])
            cursor = page.get("next_cursor")
            if cursor is None:
                return found

    def output(self, job_id: int, params: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """``GET /api/jobs/{id}/output``: the text and the X-Conductor-* headers (lower-case names)."""
        path = f"/api/jobs/{job_id}/output"
        try:
            response = self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the conductor API at {self.base_url}: {exc}") from None
        if not response.is_success:
            self._raise_for(response, path)
        headers = {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("x-conductor-")}
        return response.text, headers

    def follow_output(self, job_id: int, params: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
        """``GET /api/jobs/{id}/output/follow``: its Server-Sent Events as (event, data, id) while they come.

        ``event`` is "message" for output (data: a JSON string), "truncated" or "end"; ``id`` is the
        last id received (the offset to resume from).  Ends when the server closes the stream.
        """
        path = f"/api/jobs/{job_id}/output/follow"
        timeout = httpx.Timeout(30.0, read=60.0)  # the server sends a keepalive after 15 s of silence
        try:
            with self._http.stream("GET", path, params=params, timeout=timeout,
                                   headers={"Accept": "text/event-stream"}) as response:
                if not response.is_success:
                    response.read()
                    self._raise_for(response, path)
                event, data, last_id = "message", [], None
                for line in response.iter_lines():
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
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the conductor API at {self.base_url}: {exc}") from None

    def _raise_for(self, response: httpx.Response, path: str) -> None:
        """Raise ClientError with the API's one-line message for an error response."""
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise ClientError(error.get("message") or f"HTTP {response.status_code} from {self.base_url}{path}")
