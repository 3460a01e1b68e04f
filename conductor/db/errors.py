"""Driver errors at the storage edge: a lost or refused database connection becomes DatabaseUnavailable."""

from __future__ import annotations

import contextlib
from typing import Iterator

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from conductor.exceptions import DatabaseUnavailable


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn a lost or refused database connection into DatabaseUnavailable."""
    try:
        yield
    except PoolTimeoutError as exc:  # every pooled connection busy: overloaded, try again later
        raise DatabaseUnavailable(f"no free database connection: {exc}") from exc
    except OperationalError as exc:
        raise DatabaseUnavailable(_first_line(exc)) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable(_first_line(exc)) from exc
        raise


def _first_line(exc: DBAPIError) -> str:
    text = str(exc.orig if exc.orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
