"""Log lines an operator can use: LOG_FORMAT=text (the default) or json, with a job's fields as fields.

A line about a job is logged with ``extra=job(...)``: its ``job_id`` (and, when the line says
so, ``state``, ``node``, ``reason``) are attributes of the record, not only words of the message.
``json`` writes one object per line (``time``, ``level``, ``logger``, ``message``, the job's
fields, ``exception``); ``text`` writes ``TIME LEVEL LOGGER: message`` and appends the job's
fields as ``[job_id=42 state=RUNNING node=n1]``, so every line about a job names it.  Standard
library only; the entry points and the scheduler actor call ``configure`` (nothing at import).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

FORMATS = ("text", "json")
#: The record attributes a line about a job may carry, in the order they are written.
JOB_FIELDS = ("job_id", "state", "node", "reason")
_HANDLER_NAME = "conductor"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def job(job_id: int | str, *, state: str | None = None, node: str | None = None,
        reason: str | None = None) -> dict[str, Any]:
    """The ``extra=`` of a line about one job: its id, and its state change, node and reason when known."""
    fields: dict[str, Any] = {"job_id": job_id}
    for name, value in (("state", state), ("node", node), ("reason", reason)):
        if value is not None:
            fields[name] = getattr(value, "value", value)  # a JobState or Reason as its Slurm name
    return fields


def _job_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in JOB_FIELDS if getattr(record, name, None) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            **_job_fields(record)}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """conductor's text lines: the job's fields appended, so grep for ``job_id=42`` finds them all."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        text = super().formatMessage(record)
        fields = _job_fields(record)
        return f"{text} [{' '.join(f'{k}={v}' for k, v in fields.items())}]" if fields else text


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level: str, log_format: str = "text") -> None:
    """The root logger writes to stderr at ``level`` in ``log_format`` (replacing what an earlier call set)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
