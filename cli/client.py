"""A small REST client for the CLI: one error line per failure, never a traceback."""

from __future__ import annotations

import os
from typing import Any

import httpx

from conductor.config import Settings

#: Overrides the API URL from the configuration (like slurmrestd clients' SLURM_URL).
URL_ENV = "CONDUCTOR_URL"


class ClientError(Exception):
    """A request failed; the message is one line for the user."""


class ApiClient:
    """JSON over HTTP to the conductor API."""

    def __init__(self, settings: Settings, *, timeout_s: float = 30.0) -> None:
        self.base_url = (os.environ.get(URL_ENV) or settings.effective_api_url).rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/api/jobs/submit", json=body)

    def job(self, job_id: int) -> dict[str, Any]:
        return self._request("GET", f"/api/jobs/{job_id}")

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
