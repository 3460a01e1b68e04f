"""Slurm's hostlists: ``n[01-04,07],gpu1`` <-> the node names.  Pure functions, no I/O."""

from __future__ import annotations

import re
from typing import Iterable

_BRACKET = re.compile(r"^([^\[\],]*)\[([^\]]*)\](.*)$")
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def expand(text: str) -> list[str]:
    """Every name of a hostlist (``node[01-03],gpu[1,5-6]`` -> 6 names), in order; ValueError if malformed."""
    names: list[str] = []
    for item in _top_level_items(text):
        names.extend(_expand_item(item))
    return names


def _top_level_items(text: str) -> list[str]:
    """Split on the commas outside brackets."""
    items, depth, current = [], 0, []
    for char in text.strip():
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"{text!r}: unbalanced ']'")
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise ValueError(f"{text!r}: unbalanced '['")
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _expand_item(item: str) -> list[str]:
    match = _BRACKET.match(item)
    if match is None:
        return [item]
    prefix, ranges, suffix = match.groups()
    names = []
    for part in ranges.split(","):
        low, dash, high = part.strip().partition("-")
        if not (low.isdigit() and (not dash or high.isdigit())):
            raise ValueError(f"{item!r}: {part!r} is not N or N-M")
        width = len(low) if low.startswith("0") or (dash and len(low) == len(high)) else 0
        for number in range(int(low), int(high if dash else low) + 1):
            names.extend(f"{prefix}{str(number).zfill(width)}{tail}" for tail in _expand_item(suffix) or [""])
    return names


def compress(names: Iterable[str]) -> str:
    """The shortest usual hostlist of ``names`` (``n1,n2,n3,x`` -> ``n[1-3],x``), first-seen order of prefixes."""
    groups: dict[tuple[str, int], list[int]] = {}
    plain: dict[str, None] = {}
    order: list[tuple[str, object]] = []
    for name in names:
        match = _NUMBERED.match(name)
        if match is None:
            if name not in plain:
                plain[name] = None
                order.append(("plain", name))
            continue
        prefix, digits = match.groups()
        key = (prefix, len(digits) if digits.startswith("0") and len(digits) > 1 else 0)
        if key not in groups:
            groups[key] = []
            order.append(("group", key))
        groups[key].append(int(digits))
    return ",".join(_group_text(key, groups[key]) if kind == "group" else key  # type: ignore[arg-type]
                    for kind, key in order)


def _group_text(key: tuple[str, int], numbers: list[int]) -> str:
    prefix, width = key
    values = sorted(set(numbers))
    if len(values) == 1:
        return f"{prefix}{str(values[0]).zfill(width)}"
    runs, start = [], values[0]
    for previous, current in zip(values, values[1:] + [None]):
        if current is None or current != previous + 1:
            runs.append(str(start).zfill(width) if start == previous
                        else f"{str(start).zfill(width)}-{str(previous).zfill(width)}")
            start = current
    return f"{prefix}[{','.join(runs)}]"


def run_length(counts: Iterable[int]) -> str:
    """Slurm's per-node count lists: ``[2, 2, 2, 1]`` -> ``2(x3),1`` (SLURM_TASKS_PER_NODE)."""
    parts: list[list[int]] = []
    for count in counts:
        if parts and parts[-1][0] == count:
            parts[-1][1] += 1
        else:
            parts.append([count, 1])
    return ",".join(f"{count}(x{times})" if times > 1 else str(count) for count, times in parts)
