"""Signal names and numbers as scancel and Slurm's job records write them.  Pure."""

from __future__ import annotations

import signal as signal_module

from conductor.exceptions import InvalidJobSpec


def signal_number(name: str) -> int:
    """``USR1``, ``SIGUSR1`` or ``10`` -> 10; InvalidJobSpec naming ``signal`` otherwise."""
    text = name.strip().upper()
    if text.isdigit() and 0 < int(text) < signal_module.NSIG:
        return int(text)
    try:
        return int(signal_module.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    except KeyError:
        raise InvalidJobSpec("signal", f"{name!r} is not a signal name or number") from None


def signal_name(number: int) -> str:
    """10 -> ``SIGUSR1``; a number this platform does not name comes back as its digits."""
    try:
        return signal_module.Signals(number).name
    except ValueError:
        return str(number)
