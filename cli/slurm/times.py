"""The times sacct and scontrol take: ``2026-11-28``, ``2026-11-28T10:00[:05]``, ``now``, ``now-2days``,
``today``, ``midnight``, ``MMDD[YY]``, ``MM/DD[/YY]`` (local time).  Pure."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_UNITS_S = {"": 1, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
            "minute": 60, "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
            "days": 86400, "w": 604800, "week": 604800, "weeks": 604800}
_RELATIVE = re.compile(r"now\s*([+-])\s*(\d+)\s*([a-z]*)$")


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """The moment ``text`` names, as an aware local datetime; ValueError when it names none."""
    now = (now or datetime.now()).astimezone()
    value = text.strip().lower()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if value == "now":
        return now
    if value in ("today", "midnight"):
        return midnight
    if value == "tomorrow":
        return midnight + timedelta(days=1)
    relative = _RELATIVE.match(value)
    if relative:
        sign, count, unit = relative.groups()
        if unit not in _UNITS_S:
            raise ValueError(text)
        delta = timedelta(seconds=int(count) * _UNITS_S[unit])
        return now + delta if sign == "+" else now - delta
    for pattern in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d", "%m%d%y", "%m/%d/%y",
                    "%m/%d"):
        try:
            moment = datetime.strptime(text.strip(), pattern)
        except ValueError:
            continue
        if pattern == "%m/%d":
            moment = moment.replace(year=now.year)
        return moment.astimezone()
    if re.fullmatch(r"\d{4}", value):  # MMDD of this year
        return datetime(now.year, int(value[:2]), int(value[2:])).astimezone()
    raise ValueError(text)
