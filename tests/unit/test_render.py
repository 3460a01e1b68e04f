"""Pure formatting of the query commands (cli/render.py) and UTF-8 edges of output reads (conductor/output.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cli import render
from conductor import output


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (65, "1:05"), (3665, "1:01:05"),
                                               (90061, "1-01:01:01"), (-3, "0:00")])
def test_squeue_time(seconds: float, text: str) -> None:
    assert render.squeue_time(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(None, ""), (1.75, "00:01.750"), (61.5, "01:01.500"),
                                               (3600, "01:00:00"), (90000, "1-01:00:00")])
def test_sacct_cpu_time(seconds: float | None, text: str) -> None:
    assert render.sacct_cpu_time(seconds) == text


def test_elapsed_and_node_or_reason() -> None:
    now = datetime(2026, 11, 28, 10, 0, 10, tzinfo=timezone.utc)
    running = {"state": "RUNNING", "reason": "None", "node": "n1", "start_time": "2026-11-28T10:00:00Z",
               "end_time": None}
    assert (render.elapsed_s(running, now), render.node_or_reason(running)) == (10.0, "n1")
    pending = {"state": "PENDING", "reason": "Priority", "node": None, "start_time": None}
    assert (render.elapsed_s(pending, now), render.node_or_reason(pending)) == (0.0, "(Priority)")
    assert render.sacct_elapsed(None) == "00:00:00" and render.max_rss(None) == ""


def test_plain_table_aligns_and_right_justifies_numbers() -> None:
    text = render.plain_table(("ID", "NAME"), [["7", "a"], ["12", "longer"]], right=frozenset({"ID"}))
    assert text.splitlines() == ["ID NAME", " 7 a", "12 longer"]
    assert render.plain_table(("ID",), [["1"]], header=False) == "1"


@pytest.mark.parametrize(("data", "count"), [(b"", 0), (b"abc", 0), ("é".encode()[:1], 1), ("€".encode()[:2], 2),
                                             ("€".encode(), 0), ("😀".encode()[:3], 3), (b"a\xff", 0)])
def test_incomplete_trailing_char(data: bytes, count: int) -> None:
    assert output.incomplete_trailing_char(data) == count


def test_skip_partial_leading_char() -> None:
    assert output.skip_partial_leading_char("€x".encode()[1:]) == 2
    assert output.skip_partial_leading_char(b"plain") == 0
