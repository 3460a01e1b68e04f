"""sbatch's --array: ``0-15``, ``1,3,5``, ``0-15:4``, ``0-99%10``.  Pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

#: Slurm's default MaxArraySize is 1001: indexes 0..1000.
MAX_ARRAY_INDEX = 1000


@dataclass(frozen=True)
class ArraySpec:
    indexes: tuple[int, ...]
    max_running: int | None  #: the %N throttle


def parse(text: str) -> ArraySpec:
    """Parse an --array value; ValueError names what is wrong."""
    spec, percent, throttle = text.strip().partition("%")
    max_running = None
    if percent:
        if not (throttle.isascii() and throttle.isdigit()) or int(throttle) < 1:
            raise ValueError(f"%{throttle}: the limit after % must be a whole number of at least 1")
        max_running = int(throttle)
    indexes: set[int] = set()
    for part in spec.split(","):
        indexes.update(_range(part.strip(), text))
    if not indexes:
        raise ValueError("names no index")
    if max(indexes) > MAX_ARRAY_INDEX:
        raise ValueError(f"index {max(indexes)} is above the largest allowed, {MAX_ARRAY_INDEX}")
    return ArraySpec(tuple(sorted(indexes)), max_running)


def _range(part: str, whole: str) -> range:
    bounds, colon, step_text = part.partition(":")
    first, dash, last = bounds.partition("-")
    numbers = [first] + ([last] if dash else []) + ([step_text] if colon else [])
    if not all(n.isascii() and n.isdigit() for n in numbers):
        raise ValueError(f"{whole!r}: use N, N-M, N-M:STEP, lists with ',' and an optional %LIMIT")
    start, stop = int(first), int(last) if dash else int(first)
    step = int(step_text) if colon else 1
    if stop < start or step < 1:
        raise ValueError(f"{part!r}: the range is empty or its step is below 1")
    return range(start, stop + 1, step)


def task_label(array_job_id: int, task_id: int) -> str:
    """Slurm's ``123_4`` name for an array task."""
    return f"{array_job_id}_{task_id}"
