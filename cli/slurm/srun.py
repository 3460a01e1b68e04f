"""srun inside a batch job: runs the command as the job step's tasks, on the job's first node.

Tools run their work through srun from the batch script (submitit's ``srun --unbuffered --output ...``,
Snakemake's ``srun -n1 --cpu-bind=q ... sh -s``).  conductor has no job steps of its own, so srun
here starts ``-n`` copies of the command (default 1) with the task variables a step gives
(SLURM_PROCID, SLURM_LOCALID, SLURM_STEP_ID, SLURM_NTASKS), waits for them all and exits with the
highest exit code (128+N for a signal).  Outside a batch job it refuses: it does not allocate.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from cli.slurm import common


def _parser() -> argparse.ArgumentParser:
    parser = common.parser("srun")
    add = parser.add_argument
    add("-n", "--ntasks", type=int)
    add("-o", "--output")
    add("-e", "--error")
    add("-i", "--input")
    add("-J", "--job-name")
    add("--export")
    for flags in (("-u", "--unbuffered"), ("-l", "--label"), ("--exclusive",), ("--overlap",), ("-K", "--kill-on-bad-exit"),
                  ("-Q", "--quiet"), ("-v", "--verbose"), ("-X", "--disable-status"), ("--exact",), ("--whole",)):
        add(*flags, action="store_true")
    for flags in (("-N", "--nodes"), ("-c", "--cpus-per-task"), ("--mem",), ("--mem-per-cpu",), ("--gres",),
                  ("--gpus",), ("-G",), ("--gpus-per-task",), ("--cpu-bind",), ("--mpi",), ("--jobid",), ("-t", "--time"),
                  ("-p", "--partition"), ("-A", "--account"), ("-w", "--nodelist"), ("--ntasks-per-node",),
                  ("--distribution", "-m"), ("-W", "--wait"), ("--het-group",), ("--gpu-bind",), ("--mem-bind",),
                  ("--threads-per-core",), ("--hint",), ("-C", "--constraint"), ("--signal",)):
        add(*flags)
    add("command", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    return common.run("srun", lambda: _srun(list(argv or [])))


def _srun(argv: list[str]) -> int:
    options = _parser().parse_args(argv)
    if "SLURM_JOB_ID" not in os.environ:
        common.fail("srun: error: conductor's srun runs job steps inside a batch job only; submit with sbatch")
    if not options.command:
        common.fail("srun: fatal: No command given to execute.")
    tasks = options.ntasks or int(os.environ.get("SLURM_NTASKS", "1") or 1)
    processes = [_start(options, index, tasks) for index in range(tasks)]
    codes = [process.wait() for process in processes]
    return max(code if code >= 0 else 128 - code for code in codes)


def _start(options: argparse.Namespace, index: int, tasks: int) -> subprocess.Popen:
    env = {**os.environ, "SLURM_PROCID": str(index), "SLURM_LOCALID": str(index), "SLURM_NODEID": "0",
           "SLURM_STEP_ID": "0", "SLURM_STEPID": "0", "SLURM_NTASKS": str(tasks), "SLURM_NPROCS": str(tasks),
           "SLURM_STEP_NUM_TASKS": str(tasks), "SLURM_STEP_NUM_NODES": "1",
           "SLURM_STEP_NODELIST": os.environ.get("SLURMD_NODENAME", ""), "SLURM_STEP_TASKS_PER_NODE": str(tasks)}
    stdout = _file(options.output, index, "a") if options.output else None
    stderr = _file(options.error, index, "a") if options.error else (subprocess.STDOUT if stdout else None)
    stdin = None if index == 0 else subprocess.DEVNULL  # srun forwards its stdin to task 0
    if options.input:
        stdin = _file(options.input, index, "r")
    return subprocess.Popen(options.command, env=env, stdin=stdin, stdout=stdout, stderr=stderr)


def _file(pattern: str, index: int, mode: str):  # noqa: ANN202 - an open file
    """An --output/--error/--input file; srun's %j %J %s %t %N %u %x %% are expanded."""
    job = os.environ.get("SLURM_JOB_ID", "0")
    values = {"j": job, "J": f"{job}.0", "s": "0", "t": str(index), "n": "0", "N": os.environ.get("SLURMD_NODENAME", ""),
              "u": os.environ.get("SLURM_JOB_USER", ""), "x": os.environ.get("SLURM_JOB_NAME", ""),
              "A": os.environ.get("SLURM_ARRAY_JOB_ID", job), "a": os.environ.get("SLURM_ARRAY_TASK_ID", "0"), "%": "%"}
    out, chars = [], iter(pattern)
    for char in chars:
        if char == "%":
            code = next(chars, "%")
            out.append(values.get(code, "%" + code))
        else:
            out.append(char)
    try:
        return open("".join(out), mode, encoding="utf-8")
    except OSError as exc:
        print(f"srun: error: cannot open {''.join(out)}: {exc.strerror}", file=sys.stderr)
        raise common.CommandError("", 1) from None
