"""conductor.logs: the text and JSON formats, and a job's fields on its lines."""

from __future__ import annotations

import json
import logging

import pytest

from conductor import logs
from conductor.config import Settings
from conductor.jobs import JobState, Reason


def _record(message: str, *args: object, extra: dict | None = None, exc_info: object = None) -> logging.LogRecord:
    record = logging.getLogger("conductor.scheduler.actor").makeRecord(
        "conductor.scheduler.actor", logging.INFO, __file__, 1, message, args, exc_info, extra=extra)
    return record


def test_json_lines_carry_the_job_fields() -> None:
    extra = logs.job(42, state=JobState.COMPLETED, node="n1", reason=Reason.NONE)
    line = logs.JsonFormatter().format(_record("job %s %s on %s", 42, "COMPLETED", "n1", extra=extra))
    assert "\n" not in line
    found = json.loads(line)
    assert found["message"] == "job 42 COMPLETED on n1" and found["level"] == "INFO"
    assert found["logger"] == "conductor.scheduler.actor" and found["time"].endswith("+00:00")
    assert (found["job_id"], found["state"], found["node"], found["reason"]) == (42, "COMPLETED", "n1", "None")


def test_a_json_line_not_about_a_job_has_no_job_fields_and_an_exception_stays_on_one_line() -> None:
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        import sys
        record = _record("pass failed", exc_info=sys.exc_info())
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    found = json.loads(line)
    assert not set(logs.JOB_FIELDS) & set(found)
    assert "RuntimeError: boom" in found["exception"]


def test_text_lines_about_a_job_end_with_its_fields() -> None:
    text = logs.TextFormatter().format(_record("job %s RUNNING on %s", 7, "n2",
                                               extra=logs.job(7, state=JobState.RUNNING, node="n2")))
    assert text.endswith("INFO conductor.scheduler.actor: job 7 RUNNING on n2 [job_id=7 state=RUNNING node=n2]")
    plain = logs.TextFormatter().format(_record("node refresh failed"))
    assert plain.endswith("conductor.scheduler.actor: node refresh failed")


def test_configure_replaces_its_own_handler_only(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        logs.configure("INFO", "json")
        logs.configure("INFO", "json")
        assert len(root.handlers) == len(before) + 1
        logging.getLogger("conductor.test").info("job %s", 3, extra=logs.job(3, state="PENDING"))
        line = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")][-1]
        assert line["job_id"] == 3 and line["state"] == "PENDING"
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
        root.setLevel(level)


def test_log_format_is_text_or_json() -> None:
    assert Settings().log_format == "text"
    assert Settings(log_format="JSON").log_format == "json"
    with pytest.raises(ValueError, match="must be text or json"):
        Settings(log_format="xml")
    with pytest.raises(ValueError, match="LOG_FORMAT must be one of text, json"):
        logs.formatter("xml")
