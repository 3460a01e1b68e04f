"""A real ``conductor up`` (SQLite, embedded queue, its own Ray, state dir and port) with Slurm's commands
written by ``conductor slurm-commands`` first on PATH: what the Slurm-command tests run against."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.helpers import conductor_up, free_port

CONDUCTOR = str(Path(sys.executable).with_name("conductor"))


@dataclass
class SlurmUp:
    url: str
    env: dict[str, str]  #: PATH with the commands first, CONDUCTOR_URL set
    state: Path
    bin_dir: Path

    def run(self, *args: str, cwd: Path | None = None, input_text: str | None = None,
            timeout_s: float = 60) -> subprocess.CompletedProcess:
        """One Slurm command, as a tool would run it (found on PATH)."""
        return subprocess.run(list(args), env=self.env, cwd=cwd or self.state, capture_output=True, text=True,
                              input=input_text, timeout=timeout_s)


def start(tmp: Path, *, cpus: int = 8, namespace: str = "acceptance-slurm", **extra: object) -> Iterator[SlurmUp]:
    """Start the service, yield it once it answers, stop it (SIGTERM, then SIGKILL of its group)."""
    state = tmp / "state"
    state.mkdir(parents=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "SLURM_", "SBATCH_", "SQUEUE_"))}
    env.pop("RAY_ADDRESS", None)
    values = dict(STATE_DIR=state, API_PORT=port, RAY_DASHBOARD_PORT=free_port(), TOTAL_CPUS=cpus,
                  TOTAL_MEMORY="16G", RAY_NAMESPACE=namespace, KILL_WAIT_S=2, NODE_NAME="vm", **extra)
    env.update({f"CONDUCTOR_{key}": str(value) for key, value in values.items()})
    bin_dir = tmp / "slurm-bin"
    made = subprocess.run([CONDUCTOR, "slurm-commands", str(bin_dir)], env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    with conductor_up(env, state, port) as (url, _):
        tool_env = {**env, "CONDUCTOR_URL": url, "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"}
        yield SlurmUp(url, tool_env, state, bin_dir)
