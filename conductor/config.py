"""Settings: read once at each entry point from app.properties and the environment.

The file format is the seed's: ``KEY=VALUE`` lines, ``#`` comment lines, and a
comment after a value when ``#`` follows white space
(``WORKER_CONCURRENCY=4  # 4 workers`` reads as ``4``).  Environment variables
override the file: ``CONDUCTOR_<KEY>`` first, then the plain ``<KEY>``.  The format is read
by conductor/properties.py (standard library only); this module validates the values.

Every bad value stops start-up with one :class:`ConfigError` naming the key, the
value and where it came from (``app.properties:12``).  Nothing here runs at import.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conductor import partitions as partition_config, units
from conductor.exceptions import ConfigError
from conductor.partitions import Partition
from conductor.properties import (  # noqa: F401 - the format's names, importable from here as before
    CONFIG_FILE_ENV, DEFAULT_API_HOST, DEFAULT_API_PORT, DEFAULT_CONFIG_FILE, ENV_PREFIX, ClientConfig, RawValue,
    api_url_of, env_value, parse_properties, read_file)

#: Addresses that only this host can reach.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class Settings(BaseModel):
    """Validated configuration; immutable and picklable (it travels to Ray actors)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    worker_concurrency: int = Field(4, ge=1, le=100_000)
    worker_burst: bool = False
    total_cpus: int | None = Field(None, ge=1)
    total_memory_mb: int | None = Field(None, ge=1)
    default_mem_per_cpu_mb: int = Field(0, ge=0)
    node_name: str = Field(default_factory=socket.gethostname, min_length=1)
    state_dir: Path = Field(default_factory=lambda: default_state_dir(os.environ))
    database_url: str = ""
    redis_url: str = ""
    api_host: str = DEFAULT_API_HOST
    api_port: int = Field(DEFAULT_API_PORT, ge=1, le=65535)
    api_url: str = ""
    auth: str = "none"
    api_token: str = ""
    ray_address: str = ""
    ray_namespace: str = Field("conductor", min_length=1)
    ray_dashboard_host: str = "127.0.0.1"
    ray_dashboard_port: int = Field(8265, ge=1, le=65535)
    job_output_dir: Path | None = None
    kill_wait_s: float = Field(30.0, ge=0)
    shutdown_running_jobs: str = "keep"
    shutdown_wait_s: float = Field(300.0, ge=0)
    #: Seconds a non-head node's keeper may have nothing to do before it is retired (so Ray's
    #: autoscaler can stop the idle node); it is made again when a pending job could use the node.
    keeper_idle_timeout_s: float = Field(300.0, gt=0)
    max_script_bytes: int = Field(1024 * 1024, ge=1)
    allowed_dirs: tuple[Path, ...] = ()
    log_level: str = "INFO"
    #: text (the default) or json: one JSON object per line, a job's id, state, node and reason as fields.
    log_format: str = "text"
    #: slurm.conf's ClusterName: SLURM_CLUSTER_NAME of jobs, sacct's Cluster.
    cluster_name: str = Field("conductor", min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    #: slurm.conf's FirstJobId: the id a new database gives its first job.
    first_job_id: int = Field(1, ge=1, le=2**31 - 1)
    #: Output file of a job that gives no -o (sbatch's slurm-%j.out), and of an array task.
    job_output_pattern: str = Field("slurm-%j.out", min_length=1)
    job_array_output_pattern: str = Field("slurm-%A_%a.out", min_length=1)
    #: Partitions (PARTITION_<NAME> keys); none configured: open (any name, every node).
    partitions: tuple[Partition, ...] = ()
    scheduler_backfill: bool = True
    backfill_max_job_test: int = Field(200, ge=1)
    priority_weight_age: int = Field(1000, ge=0)
    priority_weight_fairshare: int = Field(1000, ge=0)
    priority_weight_job_size: int = Field(100, ge=0)
    priority_weight_partition: int = Field(1000, ge=0)
    priority_max_age_s: int = Field(7 * 86400, ge=1)
    priority_decay_half_life_s: int = Field(7 * 86400, ge=1)

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _dir_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for path in value or ():
            if not str(path).startswith("/"):
                raise ValueError(f"{path!r} is not an absolute directory")
        return tuple(Path(os.path.normpath(str(path))) for path in value or ())

    @field_validator("state_dir", "job_output_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @field_validator("auth")
    @classmethod
    def _known_auth(cls, value: str) -> str:
        mode = value.lower()
        if mode not in ("none", "token"):
            raise ValueError("must be none or token")
        return mode

    @field_validator("shutdown_running_jobs")
    @classmethod
    def _known_shutdown(cls, value: str) -> str:
        mode = value.lower()
        if mode not in ("keep", "requeue", "wait"):
            raise ValueError("must be keep, requeue or wait")
        return mode

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "token"

    def check_bind_address(self) -> None:
        """Refuse to serve beyond this host while anyone who connects may run scripts."""
        if not self.auth_enabled and self.api_host not in LOOPBACK_HOSTS:
            raise ConfigError(f"API_HOST={self.api_host} would expose the API beyond this host while AUTH=none: "
                              "set AUTH=token (and create tokens with `conductor token create`) or use 127.0.0.1")

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value.lower() not in ("text", "json"):
            raise ValueError("must be text or json")
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL, or the embedded SQLite file in the state directory."""
        return self.database_url or f"sqlite:///{self.state_dir / 'conductor.db'}"

    @property
    def effective_api_url(self) -> str:
        """Where clients reach the REST API."""
        return api_url_of(self.api_url, self.api_host, self.api_port)

    @property
    def client_config(self) -> ClientConfig:
        """What a client of the API needs (cli/client.py): its URL and the token."""
        return ClientConfig(api_url=self.effective_api_url, api_token=self.api_token)

    @property
    def uses_redis(self) -> bool:
        return bool(self.redis_url)


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME/conductor, else ~/.local/state/conductor (HOME taken from ``environ``)."""
    if environ.get("XDG_STATE_HOME"):
        return Path(environ["XDG_STATE_HOME"]) / "conductor"
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".local" / "state" / "conductor"


def redact_url(url: str) -> str:
    """A URL fit for banners and logs: any password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"


# Keys whose file text is converted before validation (units in the file, *_mb in code).
_CONVERTERS = {
    "TOTAL_MEMORY": ("total_memory_mb", units.parse_memory_mb),
    "DEFAULT_MEM_PER_CPU": ("default_mem_per_cpu_mb", units.parse_memory_mb),
    "PRIORITY_MAX_AGE": ("priority_max_age_s", units.parse_time_limit_s),
    "PRIORITY_DECAY_HALF_LIFE": ("priority_decay_half_life_s", units.parse_time_limit_s),
}
#: Keys ``PARTITION_<NAME>`` define partitions (conductor.partitions).
PARTITION_PREFIX = "PARTITION_"


def _field_names() -> set[str]:
    return set(Settings.model_fields)


def _key_to_field(key: str) -> str | None:
    if key.startswith(PARTITION_PREFIX):
        return "partitions"
    if key in _CONVERTERS:
        return _CONVERTERS[key][0]
    name = key.lower()
    return name if name in _field_names() else None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from the file (``path``, $CONDUCTOR_CONFIG or ./app.properties) and environment."""
    environ = os.environ if environ is None else environ
    raw = _read_file(path, environ)
    raw.update(_read_environment(environ))
    return _validate(raw, environ)


def _read_file(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> dict[str, RawValue]:
    raw = read_file(path, environ)
    for key, value in raw.items():
        if _key_to_field(key) is None:
            raise ConfigError(f"{value.origin}: unknown key {key}")
    return raw


def _read_environment(environ: Mapping[str, str]) -> dict[str, RawValue]:
    found: dict[str, RawValue] = {}
    converted = {field.upper() for field, _ in _CONVERTERS.values()}
    keys = set(_CONVERTERS) | {name.upper() for name in _field_names()} - converted
    for key in keys:
        value = env_value(environ, key)
        if value is not None:
            found[key] = value
    for name, value in environ.items():  # CONDUCTOR_PARTITION_<NAME> adds or replaces a partition
        if name.startswith(ENV_PREFIX + PARTITION_PREFIX) and len(name) > len(ENV_PREFIX + PARTITION_PREFIX):
            found[name[len(ENV_PREFIX):].upper()] = RawValue(value.strip(), f"environment variable {name}")
    return found


def _validate(raw: dict[str, RawValue], environ: Mapping[str, str]) -> Settings:
    data: dict[str, object] = {"state_dir": default_state_dir(environ)}
    origin_of: dict[str, tuple[str, RawValue]] = {}
    data.update(_partitions(raw))
    for key, value in raw.items():
        field = _key_to_field(key)
        if field is None or field == "partitions":
            continue
        origin_of[field] = (key, value)
        if value.text == "":  # an empty value means the documented default
            data.pop(field, None)
            continue
        data[field] = _convert(key, value)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        key, value = origin_of.get(field, (field.upper(), RawValue("?", "defaults")))
        raise ConfigError(f"{value.origin}: {key}={value.text!r} is invalid: {_reason(error)}") from None


def _partitions(raw: dict[str, RawValue]) -> dict[str, object]:
    """The ``partitions`` value from the PARTITION_<NAME> keys; nothing when there are none."""
    found = []
    for key, value in sorted(raw.items()):
        if not key.startswith(PARTITION_PREFIX) or value.text == "":
            continue
        try:
            found.append(partition_config.parse(key[len(PARTITION_PREFIX):], value.text))
        except ValueError as exc:
            raise ConfigError(f"{value.origin}: {key}={value.text!r} is invalid: {exc}") from None
    if not found:
        return {}
    try:
        return {"partitions": partition_config.check_set(found)}
    except ValueError as exc:
        origins = ", ".join(v.origin for k, v in sorted(raw.items()) if k.startswith(PARTITION_PREFIX))
        raise ConfigError(f"{origins}: PARTITION_* keys are invalid: {exc}") from None


def _convert(key: str, value: RawValue) -> object:
    if key not in _CONVERTERS:
        return value.text
    try:
        return _CONVERTERS[key][1](value.text)
    except ValueError as exc:
        raise ConfigError(f"{value.origin}: {key}={value.text!r} is invalid: {exc}") from None


def _reason(error: Mapping[str, object]) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")
