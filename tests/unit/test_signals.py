"""Signal names and numbers (conductor/signals.py)."""

from __future__ import annotations

import signal

import pytest

from conductor.exceptions import InvalidJobSpec
from conductor.signals import signal_name, signal_number


@pytest.mark.parametrize(("text", "number"), [("USR1", signal.SIGUSR1), ("sigusr1", signal.SIGUSR1),
                                              (" KILL ", signal.SIGKILL), ("15", 15), ("1", 1)])
def test_signal_number_reads_names_and_numbers(text: str, number: int) -> None:
    assert signal_number(text) == number


@pytest.mark.parametrize("text", ["NOPE", "0", str(signal.NSIG), "-9", ""])
def test_signal_number_refuses_what_is_not_a_signal(text: str) -> None:
    with pytest.raises(InvalidJobSpec) as caught:
        signal_number(text)
    assert caught.value.field == "signal" and "is not a signal name or number" in caught.value.reason


def test_signal_name() -> None:
    assert signal_name(signal.SIGTERM) == "SIGTERM"
    assert signal_name(250) == "250"  # not a signal this platform names
