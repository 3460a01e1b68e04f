"""Reading Slurm's values: numbers (plain, numeric strings, ``{set, infinite, number}``, NO_VAL and
INFINITE), booleans and strings.  Pure; a bad value is a SlurmError (422) naming its field.
"""

from __future__ import annotations

import re
from typing import Any

from api.slurm.error_numbers import ESLURM_REST_FAIL_PARSING
from api.slurm.schemas import SlurmError, source_path


class _Infinite:
    def __repr__(self) -> str:
        return "INFINITE"


#: What ``number`` returns for Slurm's infinite (``{"infinite": true}``, or the INFINITE value).
INFINITE = _Infinite()

INTEGER = re.compile(r"^\s*[+-]?[0-9]+\s*$")


def bad(path: str, reason: str) -> SlurmError:
    """422 naming the field: ``path`` is dotted (``job.memory_per_node``)."""
    return SlurmError(422, ESLURM_REST_FAIL_PARSING, f"{path}: {reason}", source_path(path))


def number(value: Any, path: str, *, bits: int = 32, signed: bool = False,
           allow_text: bool = False) -> int | None | _Infinite | str:
    """A Slurm number: int, numeric string or ``{set, infinite, number}``.

    Returns None when unset (also Slurm's NO_VAL), INFINITE when infinite (also Slurm's INFINITE
    value), else the integer.  With ``allow_text`` other strings come back unchanged (for "8G"
    or "1:00:00", which conductor's own parsers read).
    """
    if value is None:
        return None
    if isinstance(value, dict):
        return _number_struct(value, path, bits=bits, signed=signed, allow_text=allow_text)
    if isinstance(value, bool):
        raise bad(path, "expected a number, not true or false")
    if isinstance(value, float):
        if not value.is_integer():
            raise bad(path, f"{value!r} is not a whole number")
        value = int(value)
    if isinstance(value, str):
        if not INTEGER.match(value):
            if allow_text and value.strip():
                return value
            raise bad(path, f"{value!r} is not a whole number")
        value = int(value)
    if not isinstance(value, int):
        raise bad(path, f"expected a number or a {{set, infinite, number}} object, not {type(value).__name__}")
    if not signed:
        if value < 0:
            raise bad(path, "must not be negative")
        if value in (2**bits - 2, 2**64 - 2):  # NO_VAL
            return None
        if value in (2**bits - 1, 2**64 - 1):  # INFINITE
            return INFINITE
    return value


def _number_struct(value: dict, path: str, **kwargs: Any) -> int | None | _Infinite | str:
    unknown = sorted(set(value) - {"set", "infinite", "number"})
    if unknown:
        raise bad(path, f"unknown key {unknown[0]!r}: a number struct has set, infinite and number")
    for key in ("set", "infinite"):
        if key in value and not isinstance(value[key], bool):
            raise bad(path, f"{key} must be true or false")
    if value.get("infinite"):
        return INFINITE
    if value.get("set") is False or "number" not in value:
        return None
    return number(value["number"], path, **kwargs)


def finite(value: Any, path: str, **kwargs: Any) -> int | str | None:
    """A number as ``number`` reads it, where infinite is refused."""
    result = number(value, path, **kwargs)
    if result is INFINITE:
        raise bad(path, "infinite is not supported here; give a number")
    return result  # type: ignore[return-value]


def boolean(value: Any, path: str) -> bool | None:
    """true/false, 0/1, or the strings true, yes, 1, false, no, 0; None when not given."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise bad(path, f"{value!r} is not true or false")


def text(value: Any, path: str) -> str | None:
    """A string; a number is written as one; None when not given."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise bad(path, f"expected a string, not {type(value).__name__}")


def empty(value: Any) -> bool:
    """Values a client sends for "not set": nothing to warn about."""
    if value is None or value is False or value == "" or value == [] or value == {}:
        return True
    return isinstance(value, dict) and value.get("set") is False and not value.get("infinite")
