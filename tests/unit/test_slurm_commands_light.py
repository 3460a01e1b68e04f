"""Slurm's commands start fast: a tool calls squeue in a loop, so nothing heavy is on their import path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli.slurm import COMMANDS, write_commands

#: (httpx itself imports rich and click for its own command line: those are the client's, not ours.)
HEAVY = ("sqlalchemy", "alembic", "ray", "fastapi", "starlette", "typer", "uvicorn", "redis", "psycopg2")

_PROBE = """
import json, sys
from cli.slurm import common
import cli.slurm.{name} as command
common.client()  # what every command builds: the HTTP client and the configuration
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""


def test_no_command_imports_the_database_ray_or_the_web_framework(tmp_path: Path) -> None:
    for name in COMMANDS:
        result = subprocess.run([sys.executable, "-I", "-c", _PROBE.format(name=name)], capture_output=True,
                                text=True, cwd=tmp_path, timeout=60)
        assert result.returncode == 0, result.stderr
        loaded = set(json.loads(result.stdout))
        assert not loaded & set(HEAVY), (name, sorted(loaded & set(HEAVY)))


def test_slurm_commands_writes_executable_scripts_for_this_python(tmp_path: Path) -> None:
    written = write_commands(tmp_path / "bin")
    assert [path.name for path in written] == list(COMMANDS)
    for path in written:
        assert path.stat().st_mode & 0o111
        assert path.read_text().splitlines()[0] == f"#!{sys.executable} -I"
    result = subprocess.run([str(tmp_path / "bin" / "squeue"), "--bogus"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert (result.returncode, result.stderr.splitlines()[0]) == (1, "squeue: unrecognized option '--bogus'")
