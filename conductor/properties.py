"""The app.properties format and where each value comes from, before any validation.

``KEY=VALUE`` lines, ``#`` comment lines, and a comment after a value when ``#`` follows
white space (``WORKER_CONCURRENCY=4  # 4 workers`` reads as ``4``).  The environment
overrides the file: ``CONDUCTOR_<KEY>`` first, then the plain ``<KEY>``.

conductor.config turns these raw values into validated Settings (with pydantic).  This
module imports only the standard library, so that the CLI's request commands can read the
two things they need, the API's URL and token (:func:`load_client_config`), without paying
for the rest: they start in a fraction of the time pydantic takes to import.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from conductor.exceptions import ConfigError

#: Where the file is looked for when no ``--config`` is given.
DEFAULT_CONFIG_FILE = "app.properties"
#: Environment variable that names the configuration file.
CONFIG_FILE_ENV = "CONDUCTOR_CONFIG"
ENV_PREFIX = "CONDUCTOR_"
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000
#: The keys a client of the API reads (cli's request commands): where the API is, and the token.
CLIENT_KEYS = ("API_URL", "API_HOST", "API_PORT", "API_TOKEN")

_INLINE_COMMENT = re.compile(r"\s+#.*$")


@dataclass(frozen=True)
class RawValue:
    """A value as written, with where it was written (for error messages)."""

    text: str
    origin: str


@dataclass(frozen=True)
class ClientConfig:
    """What a client of the REST API needs: its base URL and the token to send (empty: none)."""

    api_url: str
    api_token: str


def parse_properties(text: str, *, source: str) -> dict[str, RawValue]:
    """Parse ``KEY=VALUE`` text; raise ConfigError on a line that is neither that nor a comment."""
    values: dict[str, RawValue] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}:{number}: expected KEY=VALUE, got {stripped!r}")
        value = _INLINE_COMMENT.sub("", value).strip()
        values[key.strip().upper()] = RawValue(_unquote(value), f"{source}:{number}")
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def read_file(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> dict[str, RawValue]:
    """The file's values: ``path``, else $CONDUCTOR_CONFIG, else ./app.properties (absent: no values).

    A file named by ``path`` or $CONDUCTOR_CONFIG must exist.  Keys are not checked here.
    """
    explicit = path is not None or CONFIG_FILE_ENV in environ
    chosen = Path(path or environ.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE)
    if not chosen.is_file():
        if explicit:
            raise ConfigError(f"configuration file {chosen} does not exist")
        return {}
    return parse_properties(chosen.read_text(encoding="utf-8"), source=str(chosen))


def env_value(environ: Mapping[str, str], key: str) -> RawValue | None:
    """``key``'s value from the environment (CONDUCTOR_<KEY>, else <KEY>), or None."""
    for name in (ENV_PREFIX + key, key):
        if name in environ:
            return RawValue(environ[name].strip(), f"environment variable {name}")
    return None


def api_url_of(api_url: str, api_host: str, api_port: int) -> str:
    """Where clients reach the REST API: API_URL, else the address the API listens on."""
    if api_url:
        return api_url.rstrip("/")
    host = "127.0.0.1" if api_host in ("0.0.0.0", "::") else api_host
    return f"http://{host}:{api_port}"


def load_client_config(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> ClientConfig | None:
    """The API's URL and token from the file and the environment, reading only CLIENT_KEYS.

    The other keys are neither validated nor checked to be known: conductor.config does that
    for the service, which reads the whole file.  A missing file or a malformed line is
    reported here as load_settings reports it.  None: API_PORT is not plainly a port
    number, so the caller should load the full Settings, which names the error as always.
    """
    raw = read_file(path, environ)
    for key in CLIENT_KEYS:
        found = env_value(environ, key)
        if found is not None:
            raw[key] = found
    text = {key: raw[key].text for key in CLIENT_KEYS if key in raw and raw[key].text != ""}  # empty: default
    port_text = text.get("API_PORT", str(DEFAULT_API_PORT))
    if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        return None
    url = api_url_of(text.get("API_URL", ""), text.get("API_HOST", DEFAULT_API_HOST), int(port_text))
    return ClientConfig(api_url=url, api_token=text.get("API_TOKEN", ""))
