"""Slurm's own commands -- sbatch, squeue, scancel, sacct, scontrol, sinfo, and srun inside a batch
job -- over conductor's REST API.

Opt-in: ``conductor slurm-commands DIR`` writes them into DIR, and ``export PATH=DIR:$PATH`` puts them
first; nothing installs them on PATH by default, so they never shadow a real Slurm.  Each one is a
tiny script that runs ``cli.slurm.<command>.main`` with this installation's Python.  They take the
options workflow tools pass (submitit, dask-jobqueue, Snakemake's Slurm executor, Parsl), print
Slurm's formats and exit with Slurm's codes where tools depend on them.  They speak to the API at
CONDUCTOR_URL with CONDUCTOR_TOKEN, as ``conductor`` does, and start fast: only the HTTP client,
the configuration and the renderers are imported (no database, Ray or web framework).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

COMMANDS = ("sbatch", "squeue", "scancel", "sacct", "scontrol", "sinfo", "srun")

_TEMPLATE = """#!{python} -I
# {name}: Slurm's {name} over conductor's REST API (written by `conductor slurm-commands`).
import sys
from cli.slurm.{name} import main
sys.exit(main(sys.argv[1:]))
"""


def write_commands(directory: Path, *, python: str | None = None) -> list[Path]:
    """Write the commands into ``directory`` (created if needed); returns their paths.

    ``-I`` keeps the tool's PYTHONPATH and working directory out of the commands' imports.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in COMMANDS:
        path = directory / name
        path.write_text(_TEMPLATE.format(python=python or sys.executable, name=name), encoding="utf-8")
        os.chmod(path, 0o755)
        written.append(path)
    return written
