"""Wall time of `conductor` commands, from process start to exit, beside `python -c pass`.

Starts the API alone (uvicorn serving create_app on a temporary state directory: SQLite, the
embedded queue, no scheduler, one node recorded so that submit's fits-a-node check runs) on a
free port, submits one job to show, then runs each command ``--runs`` times, in rounds (one
run of every command per round, so a change of machine load touches them all alike):

  * ``python -c pass``: the interpreter's own start, the baseline;
  * an empty typer command and an empty click command: what each framework costs to start;
  * ``conductor --help``, ``conductor show ID``, ``conductor queue``, ``conductor submit --parsable``.

With ``--before DIR`` (a source tree, e.g. ``git archive main | tar -x -C DIR``), the same
conductor commands are also timed from DIR's cli/ and conductor/ (this interpreter, PYTHONPATH=DIR),
in the same rounds: the figures before and after a change, under the same load.

Each time covers the whole command (start, imports, configuration, the request, its answer
and the printing), so it bounds the time to the request from above.  The commands run in a
directory holding a copy of the repository's app.properties, with CONDUCTOR_URL set, and
print to a pipe (on a terminal, ``queue`` also imports rich for its table).  Everything
started here is stopped by its process id.

Run:  .venv/bin/python bench/cli_start.py [--runs 20] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONDUCTOR = str(Path(sys.executable).with_name("conductor"))
EMPTY_TYPER = "import typer\napp = typer.Typer()\n@app.command()\ndef f() -> None: pass\napp()"
EMPTY_CLICK = "import click\n@click.command()\ndef f() -> None: pass\nf()"
#: The console script's body, for a tree given by PYTHONPATH instead of the installed one.
ENTRY_POINT = "import sys\nsys.argv[0] = 'conductor'\nfrom cli.main import main\nsys.exit(main())"
Command = tuple[list[str], dict[str, str]]


def serve(port: int, state_dir: str) -> None:
    """The API process: create_app on SQLite in ``state_dir``, one 32-CPU node recorded."""
    sys.path.insert(0, str(ROOT))
    import uvicorn

    from api.app import create_app
    from conductor.config import Settings
    from conductor.resources import Node, Resources
    from conductor.service import JobService

    settings = Settings(state_dir=Path(state_dir), node_name="bench-node", log_level="WARNING")
    service = JobService.from_settings(settings)
    service.repository.replace_nodes([Node("ray-bench", "bench-node", Resources(32, 65536))])
    service.close()
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the API exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the API at {url} did not answer within {timeout_s:g} s")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    return time.perf_counter() - started, result


def measure(commands: dict[str, Command], cwd: Path, runs: int) -> dict[str, list[float]]:
    """Each command ``runs`` times, interleaved by rounds; a failed run stops the benchmark."""
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, (argv, env) in commands.items():
            elapsed, result = _run(argv, env, cwd)
            if result.returncode != 0:
                raise SystemExit(f"{label} failed ({result.returncode}): {result.stderr.strip()}")
            times[label].append(elapsed)
    return times


def report(times: dict[str, list[float]]) -> None:
    baseline = statistics.median(times["python -c pass"])
    width = max(len(label) for label in times)
    print(f"{'command':{width}s} {'median':>9s} {'min':>9s} {'max':>9s} {'median - pass':>14s}")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:{width}s} {median * 1000:6.1f} ms {min(values) * 1000:6.1f} ms {max(values) * 1000:6.1f} ms "
              f"{(median - baseline) * 1000:11.1f} ms")


def _commands(env: dict[str, str], job_id: str, before: Path | None) -> dict[str, Command]:
    """The baselines, then each conductor command (and, with ``before``, the same from that tree)."""
    commands: dict[str, Command] = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        "empty typer command": ([sys.executable, "-c", EMPTY_TYPER], env),
        "empty click command": ([sys.executable, "-c", EMPTY_CLICK], env),
    }
    variants = [("", [CONDUCTOR], env)]
    if before is not None:
        tree_env = {**env, "PYTHONPATH": str(before.resolve())}
        variants.append((f" [{before}]", [sys.executable, "-c", ENTRY_POINT], tree_env))
    for suffix, prefix, variant_env in variants:
        for args in (["--help"], ["show", job_id], ["queue"], ["submit", "--parsable", "job.sh"]):
            commands[f"conductor {' '.join(args)}{suffix}"] = ([*prefix, *args], variant_env)
    return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="Runs of each command (default 20).")
    parser.add_argument("--before", type=Path, help="Also time the commands of this source tree (PYTHONPATH).")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "STATE_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    work = Path(tempfile.mkdtemp(prefix="cli-start-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(work / "state")], cwd=ROOT)
    try:
        _wait_healthy(url, server)
        shutil.copy(ROOT / "app.properties", work / "app.properties")
        (work / "job.sh").write_text("#!/bin/bash\ntrue\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
        env["CONDUCTOR_URL"] = url
        _, first = _run([CONDUCTOR, "submit", "--parsable", "job.sh"], env, work)
        if first.returncode != 0:
            raise SystemExit(f"submit failed: {first.stderr.strip()}")
        commands = _commands(env, first.stdout.strip(), args.before)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  "
              f"({os.cpu_count()} CPUs), {args.runs} runs each")
        times = measure(commands, work, args.runs)
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        report(times)
    finally:
        _stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
