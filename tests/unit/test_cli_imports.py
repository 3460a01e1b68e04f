"""What the `conductor` client commands import: the import graph, not the time (bench/cli_start.py times it).

Each command runs for real, in a fresh interpreter, against a real API (uvicorn serving
create_app on SQLite in a thread of this process); when it exits, the interpreter writes the
top-level packages it had imported.  The client path must not import the service's stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import api_answers, free_port, node, spec, wait_for

#: What the service imports and a client command must not: the database, migrations, Ray, the
#: web stack, and the libraries the CLI stopped using to start faster (httpx, typer -> pydantic).
SERVICE_ONLY = frozenset({"sqlalchemy", "alembic", "ray", "fastapi", "starlette", "uvicorn", "httpx", "pydantic",
                          "pydantic_core", "typer"})
#: Runs the real entry point; at exit writes sorted top-level module names to $MODULES_OUT.
_PROBE = (
    "import atexit, json, os, sys\n"
    "atexit.register(lambda: open(os.environ['MODULES_OUT'], 'w').write("
    "json.dumps(sorted({name.split('.')[0] for name in sys.modules}))))\n"
    "sys.argv = ['conductor', *sys.argv[1:]]\n"
    "from cli.main import main\n"
    "main()\n"
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The API on a free port (SQLite, no scheduler), one node recorded (so submit is accepted) and one job."""
    import uvicorn

    from api.app import create_app
    from conductor.config import Settings
    from conductor.service import JobService

    state = tmp_path_factory.mktemp("imports-state")
    settings = Settings(state_dir=state, node_name="n1")
    service = JobService.from_settings(settings)
    service.repository.replace_nodes([node("n1", 8, 16384)])
    job_id = service.submit(spec("#!/bin/bash\ntrue\n", working_dir=str(state))).id
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        wait_for(lambda: api_answers(url), 30, interval_s=0.1)
        yield {"url": url, "job": str(job_id)}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.close()


def _imported(args: list[str], cwd: Path, url: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``conductor ARGS`` in a fresh interpreter; its result and the top-level packages it imported."""
    out = cwd / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(CONDUCTOR_URL=url, MODULES_OUT=str(out))
    result = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=60)
    return result, set(json.loads(out.read_text()))


def test_importing_the_cli_imports_none_of_the_service() -> None:
    code = "import cli.main, sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert SERVICE_ONLY.isdisjoint(result.stdout.split())


@pytest.mark.parametrize("args", [
    ["--help"], ["show", "JOB"], ["show", "JOB", "--json"], ["queue"], ["queue", "-t", "all", "--json"],
    ["history", "-j", "JOB"], ["partitions"], ["submit", "--parsable", "job.sh"], ["submit", "--help"],
    ["hold", "JOB"], ["release", "JOB"], ["cancel", "-n", "nothing-has-this-name"], ["logs", "JOB"],
    ["token", "--help"], ["up", "--help"], ["status"], ["status", "--json"],
], ids=" ".join)
def test_a_client_command_imports_none_of_the_service(api: dict, tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "job.sh").write_text("#!/bin/bash\ntrue\n")
    result, modules = _imported([api["job"] if arg == "JOB" else arg for arg in args], tmp_path, api["url"])
    assert result.returncode == 0, result.stderr
    assert modules.isdisjoint(SERVICE_ONLY), sorted(modules & SERVICE_ONLY)
    assert {"click", "cli"} <= modules  # the probe saw the command's own imports


def test_a_failed_request_still_imports_no_database_ray_or_web_stack(tmp_path: Path) -> None:
    """A failure validates the whole configuration (pydantic); it does not reach for the service either."""
    result, modules = _imported(["queue"], tmp_path, f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1 and result.stderr.startswith("conductor: error: cannot reach the conductor API")
    assert modules.isdisjoint({"sqlalchemy", "alembic", "ray", "fastapi", "starlette", "uvicorn", "httpx"})


def test_the_service_commands_still_import_what_they_run(tmp_path: Path) -> None:
    """`token create` imports conductor.auth (SQLAlchemy, alembic) inside the command: it must still work."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(CONDUCTOR_STATE_DIR=str(tmp_path / "state"), MODULES_OUT=str(tmp_path / "modules.json"))
    command = ["token", "create", "--user", "alice", "--unix-user", "nobody"]  # an account every node has
    result = subprocess.run([sys.executable, "-c", _PROBE, *command], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cdt_")
    assert {"sqlalchemy", "alembic", "pydantic"} <= set(json.loads((tmp_path / "modules.json").read_text()))
