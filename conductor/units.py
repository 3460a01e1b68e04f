"""Quantities as Slurm writes them: memory sizes and time limits.  Pure functions, no I/O."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_MEMORY = re.compile(r"^\s*([0-9]+)\s*([KMGT]?)B?\s*$", re.IGNORECASE)
_MB_PER_UNIT = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_memory_mb(text: str | int) -> int:
    """``"8G"`` -> 8192.  A bare number is megabytes (sbatch's --mem default unit).

    K rounds up to whole megabytes.  Raises ValueError with the reason.
    """
    if isinstance(text, bool):
        raise ValueError("expected a size such as 512M or 8G")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("must not be negative")
        return text
    match = _MEMORY.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size: use a whole number with an optional unit K, M, G or T (e.g. 8G)")
    number, unit = int(match.group(1)), match.group(2).upper()
    megabytes = number * _MB_PER_UNIT[unit]
    return int(megabytes) if megabytes == int(megabytes) else int(megabytes) + 1


def format_memory_mb(memory_mb: int) -> str:
    """8192 -> ``"8G"``; 1536 -> ``"1536M"``."""
    for unit, size in (("T", 1024 * 1024), ("G", 1024)):
        if memory_mb and memory_mb % size == 0:
            return f"{memory_mb // size}{unit}"
    return f"{memory_mb}M"


def parse_time_limit_s(text: str | int) -> int | None:
    """Parse sbatch's --time into seconds; ``0`` (or "UNLIMITED") means no limit -> None.

    Accepted: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
    days-hours:minutes, days-hours:minutes:seconds.  An int is minutes.
    """
    if isinstance(text, bool):
        raise ValueError("expected a time such as 30, 1:00:00 or 2-00:00:00")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("must not be negative")
        return text * 60 or None
    value = text.strip()
    if value.upper() in ("UNLIMITED", "INFINITE"):
        return None
    seconds = _time_seconds(value)
    return seconds or None


def _time_seconds(value: str) -> int:
    days_part, dash, rest = value.partition("-")
    if not dash:
        days, rest = 0, value
    else:
        days = _number(days_part, value)
    fields = [_number(part, value) for part in rest.split(":")]
    if dash:  # days-hours[:minutes[:seconds]]
        if not 1 <= len(fields) <= 3:
            raise ValueError(_time_error(value))
        fields += [0] * (3 - len(fields))
        hours, minutes, seconds = fields
    elif len(fields) == 1:
        hours, minutes, seconds = 0, fields[0], 0
    elif len(fields) == 2:
        hours, minutes, seconds = 0, fields[0], fields[1]
    elif len(fields) == 3:
        hours, minutes, seconds = fields
    else:
        raise ValueError(_time_error(value))
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _number(part: str, whole: str) -> int:
    if not (part.isascii() and part.isdigit()):
        raise ValueError(_time_error(whole))
    return int(part)


def _time_error(value: str) -> str:
    return (
        f"{value!r} is not a time limit: use minutes, minutes:seconds, hours:minutes:seconds, "
        "days-hours, days-hours:minutes or days-hours:minutes:seconds"
    )


def format_duration_s(seconds: float | None) -> str:
    """Seconds -> Slurm's ``[days-]hh:mm:ss`` (``UNLIMITED`` for None)."""
    if seconds is None:
        return "UNLIMITED"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


_BEGIN_UNITS_S = {"": 1, "s": 1, "sec": 1, "seconds": 1, "m": 60, "min": 60, "minutes": 60, "h": 3600,
                  "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400, "w": 604800,
                  "week": 604800, "weeks": 604800}
_NOW_PLUS = re.compile(r"^now(?:\+([0-9]+)([a-z]*))?$")


def parse_begin_time(text: str, now: datetime) -> datetime:
    """sbatch's --begin: ``now[+N[seconds|minutes|hours|days|weeks]]``, ``HH:MM[:SS]`` (the next
    such time), or ``YYYY-MM-DD[THH:MM[:SS]]``.  ``now`` must be timezone-aware (local time)."""
    value = text.strip().lower()
    match = _NOW_PLUS.match(value)
    if match:
        count, unit = match.group(1), match.group(2) or ""
        if unit not in _BEGIN_UNITS_S:
            raise ValueError(f"{text!r}: unknown unit {unit!r} (seconds, minutes, hours, days, weeks)")
        return now + timedelta(seconds=int(count or 0) * _BEGIN_UNITS_S[unit])
    if re.fullmatch(r"[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?", value):
        clock = datetime.strptime(value, "%H:%M:%S" if value.count(":") == 2 else "%H:%M").time()
        moment = now.replace(hour=clock.hour, minute=clock.minute, second=clock.second, microsecond=0)
        return moment if moment > now else moment + timedelta(days=1)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use now+N[minutes|hours|days], HH:MM[:SS] "
                         "or YYYY-MM-DD[THH:MM[:SS]]") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)
