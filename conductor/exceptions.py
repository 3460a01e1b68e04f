"""conductor's own errors.  Driver errors are translated into these at the db/queue edge."""

from __future__ import annotations


class ConductorError(Exception):
    """Something went wrong in conductor."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(ConductorError):
    """The configuration is invalid."""


class InvalidJobSpec(ConductorError):
    """A job request is invalid; ``field`` names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class JobNotFound(ConductorError):
    """No such job."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class ServiceUnavailable(ConductorError):
    """A service conductor depends on (database, Redis, Ray) is unavailable."""

    def __init__(self, component: str, detail: str = "") -> None:
        super().__init__(f"{component} is unavailable" + (f": {detail}" if detail else ""))
        self.component = component


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("database", detail)


class QueueUnavailable(ServiceUnavailable):
    """The job queue (Redis) cannot be reached."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("queue", detail)


class SchedulerBusy(ConductorError):
    """Another scheduler already works on this database."""


class NotAuthenticated(ConductorError):
    """No valid credentials were given."""


class Forbidden(ConductorError):
    """The caller may not do this; ``field`` names what was refused."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
