"""conductor.units: Slurm's memory sizes and time limits."""

from __future__ import annotations

import pytest

from conductor.units import format_duration_s, format_memory_mb, parse_memory_mb, parse_time_limit_s


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8G", 8192),
        ("8g", 8192),
        ("512", 512),
        ("512M", 512),
        ("1T", 1024 * 1024),
        ("100K", 1),  # rounds up to a whole megabyte
        ("1024K", 1),
        ("1025K", 2),
        ("0K", 0),
        ("0", 0),
        (" 2G ", 2048),
        ("4GB", 4096),
        (512, 512),
        (0, 0),
    ],
)
def test_parse_memory_mb(text: str | int, expected: int) -> None:
    assert parse_memory_mb(text) == expected


@pytest.mark.parametrize("text", ["8X", "-1", "", "1.5G", "G", "8 G B x", -1, True])
def test_parse_memory_mb_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_memory_mb(text)  # type: ignore[arg-type]


def test_parse_memory_mb_error_names_the_text() -> None:
    with pytest.raises(ValueError, match=r"^'8X' is not a size"):
        parse_memory_mb("8X")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30", 30 * 60),  # minutes
        ("5:30", 5 * 60 + 30),  # minutes:seconds
        ("1:02:03", 3600 + 2 * 60 + 3),  # hours:minutes:seconds
        ("2-3", (2 * 24 + 3) * 3600),  # days-hours
        ("2-3:04", (2 * 24 + 3) * 3600 + 4 * 60),  # days-hours:minutes
        ("2-3:04:05", (2 * 24 + 3) * 3600 + 4 * 60 + 5),  # days-hours:minutes:seconds
        ("0:45", 45),
        (" 10 ", 600),
        ("0", None),
        ("0:00:00", None),
        ("UNLIMITED", None),
        ("unlimited", None),
        ("INFINITE", None),
        (90, 90 * 60),  # an int is minutes
        (0, None),
    ],
)
def test_parse_time_limit_s(text: str | int, expected: int | None) -> None:
    assert parse_time_limit_s(text) == expected


@pytest.mark.parametrize("text", ["1:2:3:4", "a", "-5", "1-", "", "1-2:3:4:5", "1:x", "1.5", "-1-2", -5, False])
def test_parse_time_limit_s_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_time_limit_s(text)  # type: ignore[arg-type]


def test_parse_time_limit_s_error_lists_the_forms() -> None:
    with pytest.raises(ValueError, match=r"^'1:2:3:4' is not a time limit: use minutes, minutes:seconds"):
        parse_time_limit_s("1:2:3:4")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "UNLIMITED"),
        (0, "00:00:00"),
        (59.9, "00:00:59"),
        (3723, "01:02:03"),
        (86399, "23:59:59"),
        (86400, "1-00:00:00"),
        (2 * 86400 + 3 * 3600 + 4 * 60 + 5, "2-03:04:05"),
    ],
)
def test_format_duration_s(seconds: float | None, expected: str) -> None:
    assert format_duration_s(seconds) == expected


@pytest.mark.parametrize("text", ["01:02:03", "2-03:04:05", "23:59:59", "00:00:45"])
def test_format_duration_s_round_trips_through_parse(text: str) -> None:
    assert format_duration_s(parse_time_limit_s(text)) == text


@pytest.mark.parametrize(
    ("memory_mb", "expected"),
    [(8192, "8G"), (1536, "1536M"), (1024, "1G"), (1024 * 1024, "1T"), (3 * 1024 * 1024, "3T"), (512, "512M"),
     (0, "0M")],
)
def test_format_memory_mb(memory_mb: int, expected: str) -> None:
    assert format_memory_mb(memory_mb) == expected
