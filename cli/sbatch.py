"""``conductor submit``: sbatch's options, from the command line and from #SBATCH directives.

One argparse parser reads both: the directives of the script first, then the command
line, whose values win (sbatch's precedence).  The result is the REST API's submit body.
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

from conductor import arrays, dependencies, directives, jobs, slurm_options, units

WRAP_TEMPLATE = "#!/bin/sh\n# This script was created by conductor submit --wrap.\n\n{command}\n"
#: sbatch's default adjustment for a bare --nice.
DEFAULT_NICE = 100


class UsageError(Exception):
    """A bad option or value; the message names it."""


class ScriptError(UsageError):
    """The script itself is refused (missing, empty, no #! line): sbatch exits 1 for these, not 255."""


#: sbatch's options conductor accepts without honouring them: (flags, takes a value).  A job that
#: names one runs anyway, and the submit prints one warning line naming them (sbatch never refuses).
IGNORED_OPTIONS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("--mail-type",), True), (("--mail-user",), True), (("-q", "--qos"), True), (("-C", "--constraint"), True),
    (("-L", "--licenses"), True), (("--reservation",), True), (("-M", "--clusters"), True),
    (("--acctg-freq",), True), (("--bb",), True), (("--bbf",), True), (("--contiguous",), False),
    (("-S", "--core-spec"), True), (("--cores-per-socket",), True), (("--cpu-freq",), True),
    (("--cpus-per-gpu",), True), (("--deadline",), True), (("--delay-boot",), True),
    (("-m", "--distribution"), True), (("-B", "--extra-node-info"), True), (("--gpu-bind",), True),
    (("--gpu-freq",), True), (("--gpus-per-socket",), True), (("--gpus-per-task",), True),
    (("--gres-flags",), True), (("--hint",), True), (("--ignore-pbs",), False), (("--mcs-label",), True),
    (("--mem-bind",), True), (("--mem-per-gpu",), True), (("--mincpus",), True), (("--network",), True),
    (("-k", "--no-kill"), False), (("-w", "--nodelist"), True), (("-x", "--exclude"), True),
    (("-F", "--nodefile"), True), (("--ntasks-per-core",), True), (("--ntasks-per-gpu",), True),
    (("--ntasks-per-socket",), True), (("-O", "--overcommit"), False), (("-s", "--oversubscribe"), False),
    (("--power",), True), (("--profile",), True), (("--propagate",), True), (("--reboot",), False),
    (("--sockets-per-node",), True), (("--spread-job",), False), (("--switches",), True),
    (("--thread-spec",), True), (("--threads-per-core",), True), (("--time-min",), True), (("--tmp",), True),
    (("--uid",), True), (("--gid",), True), (("--use-min-nodes",), False), (("-v", "--verbose"), False),
    (("--wait-all-nodes",), True), (("--wckey",), True), (("--cluster-constraint",), True),
    (("--container",), True), (("-i", "--input"), True), (("--export-file",), True), (("--x11",), False),
    (("--prefer",), True), (("--batch",), True), (("--priority-tier",), True),
)


class _Ignored(argparse.Action):
    """Records the option's name (for the one warning line) and drops its value."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001, ANN204
        names = list(getattr(namespace, "ignored", None) or [])
        if self.dest not in names:
            names.append(self.dest)
        namespace.ignored = names


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit(2) with usage text
        raise UsageError(message.removeprefix("argument "))


def build_parser(prog: str = "conductor submit") -> argparse.ArgumentParser:
    """The options, named and abbreviated as sbatch's."""
    parser = _Parser(
        prog=prog, add_help=False, argument_default=None, allow_abbrev=False,
        usage=f"{prog} [OPTIONS] [SCRIPT [ARGS...]]",
        description="Submit a batch script, like sbatch. The script is read from SCRIPT, or from stdin "
                    "when SCRIPT is omitted or '-'; #SBATCH and #CONDUCTOR lines before its first command "
                    "are read as options, and the command line overrides them.",
        epilog="examples:\n  conductor submit job.sh -c 4 --mem 8G -t 1:00:00\n"
               "  conductor submit --wrap 'hostname' -J probe --parsable\n"
               "  conductor submit -W job.sh && echo 'job succeeded'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("-h", "--help", action="store_true", help="show this help and exit")
    add("-J", "--job-name", dest="name", metavar="NAME", help="job name (default: the script's file name)")
    add("-A", "--account", metavar="ACCOUNT", help="account to charge")
    add("-p", "--partition", metavar="PARTITION", help="partition")
    add("-c", "--cpus-per-task", dest="cpus_per_task", type=_positive, metavar="N", help="CPUs per task")
    add("-n", "--ntasks", type=_positive, metavar="N", help="tasks in all (spread over -N nodes)")
    add("--ntasks-per-node", dest="ntasks_per_node", type=_positive, metavar="N", help="tasks per node")
    add("-N", "--nodes", metavar="N[-M]", type=_nodes, help="nodes the job needs at once (N-M: N)")
    add("-G", "--gpus", type=_positive, metavar="N", help="GPUs in all (spread evenly over the nodes)")
    add("--gpus-per-node", dest="gpus_per_node", type=_positive, metavar="N", help="GPUs per node")
    add("--gres", metavar="gpu:N", type=_gres, help="generic resources per node: gpu:N (or gpu:TYPE:N)")
    add("--mem", metavar="SIZE", type=_memory, help="memory per node, K/M/G/T (default unit M)")
    add("--mem-per-cpu", dest="mem_per_cpu", metavar="SIZE", type=_memory, help="memory per CPU")
    add("-t", "--time", metavar="TIME", type=_time,
        help="time limit: min, min:sec, h:m:s, d-h, d-h:m, d-h:m:s; 0 = none")
    add("-o", "--output", metavar="PATTERN", help="stdout file (%%j id, %%x name, %%u user, %%%% a %%)")
    add("-e", "--error", metavar="PATTERN", help="stderr file (default: with stdout)")
    add("-D", "--chdir", metavar="DIR", help="working directory (default: the current one)")
    add("--export", metavar="ALL|NONE|[ALL,]VAR[=VALUE],...", help="environment passed (default ALL)")
    add("--wrap", metavar="COMMAND", help="run COMMAND under /bin/sh instead of a script")
    add("--requeue", dest="requeue", action="store_const", const=True, help="may be requeued (default)")
    add("--no-requeue", dest="requeue", action="store_const", const=False, help="never requeued")
    add("--nice", nargs="?", const=DEFAULT_NICE, type=int, metavar="ADJ", help="lower the priority by ADJ (100)")
    add("--priority", type=int, metavar="N", help="priority (higher runs first)")
    add("-W", "--wait", action="store_const", const=True, help="wait for the job; exit with its exit code")
    add("--parsable", action="store_const", const=True, help="print only the job id")
    add("-a", "--array", metavar="INDEXES", type=_array, help="job array: 0-15, 1,3,5, 0-15:4, 0-99%%10")
    add("-d", "--dependency", metavar="LIST", type=_dependency,
        help="afterok:ID[:ID], afternotok, afterany, after, aftercorr, singleton; ',' = and, '?' = or; "
             "ID: 42, 40_2 (one task), 40 or 40_* (every task of array 40)")
    add("--kill-on-invalid-dep", dest="kill_on_invalid_dep", metavar="yes|no", type=_yes_no,
        help="cancel the job once its dependency can never be met (default no: it waits, "
             "reason DependencyNeverSatisfied)")
    add("-H", "--hold", action="store_const", const=True, help="submit held (release with conductor release)")
    add("-b", "--begin", metavar="TIME", type=_begin, help="not before: now+N[minutes|hours|days], HH:MM, "
                                                           "YYYY-MM-DD[THH:MM]")
    add("--comment", metavar="TEXT", help="a comment, shown by squeue -o %%k and scontrol show job")
    add("--open-mode", dest="open_mode", metavar="append|truncate", type=_open_mode,
        help="append to or truncate (default) the output files")
    add("--signal", dest="warning_signal", metavar="[B:]SIG[@TIME]", type=_warning_signal,
        help="send SIG TIME seconds (default 60) before the time limit; B: only to the batch shell")
    add("--exclusive", nargs="?", const="exclusive", metavar="user|mcs", help="whole nodes, shared with no other job")
    add("--get-user-env", dest="get_user_env", nargs="?", const="1", metavar="[TIMEOUT][S|L]",
        help="sets SLURM_GET_USER_ENV (the login environment itself is not loaded here)")
    add("-Q", "--quiet", action="store_const", const=True, help="print nothing (not even the --parsable id)")
    add("--test-only", dest="test_only", action="store_const", const=True,
        help="check the options and the script, submit nothing")
    for flags, takes_value in IGNORED_OPTIONS:
        add(*flags, dest=flags[-1], action=_Ignored, nargs=None if takes_value else 0, help=argparse.SUPPRESS)
    # (dest is the long flag itself, e.g. "--qos": it names the option in the warning)
    add("script", nargs="?", help="the batch script ('-' or nothing: stdin)")
    add("args", nargs="*", help="arguments for the script (after --, options too)")
    return parser


def _parse_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Options may follow the script (``submit job.sh -c 4``); after ``--`` everything is the script's."""
    if "--" in argv:
        cut = argv.index("--")
        options = parser.parse_intermixed_args(argv[:cut])
        options.args = [*(options.args or []), *argv[cut + 1:]]
        return options
    try:
        return parser.parse_intermixed_args(argv)
    except UsageError as exc:
        if "unrecognized arguments" in str(exc):
            raise UsageError(f"{exc}; to pass options to the script, put them after --") from None
        raise


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _checked(parse: Callable[[str], object], *, keep_text: bool = False) -> Callable[[str], object]:
    """An argparse type that validates with ``parse``; its ValueError becomes the option's error."""
    def convert(text: str) -> object:
        try:
            value = parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text if keep_text else value

    return convert


def _nodes(text: str) -> int:
    """-N N or N-M (a range: the minimum, which is what conductor allocates)."""
    try:
        return slurm_options.minimum_nodes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _gres(text: str) -> int:
    """--gres gpu:N or gpu:TYPE:N (GPUs per node); other resources are not known here."""
    count = slurm_options.gpus_from_gres(text)
    if count is None:
        raise argparse.ArgumentTypeError(f"{text!r}: only gpu:N or gpu:TYPE:N is supported")
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return count


def _yes_no(text: str) -> bool:
    if text.strip().lower() not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"{text!r}: use yes or no")
    return text.strip().lower() == "yes"


def _open_mode(text: str) -> str:
    if text.strip().lower() not in jobs.OPEN_MODES:
        raise argparse.ArgumentTypeError(f"{text!r}: use append or truncate")
    return text.strip().lower()


_warning_signal = _checked(lambda text: str(jobs.parse_warning_signal(text)))
_dependency = _checked(dependencies.parse, keep_text=True)
_memory = _checked(units.parse_memory_mb)
_time = _checked(units.parse_time_limit_s, keep_text=True)
_array = _checked(arrays.parse, keep_text=True)
_begin = _checked(lambda text: units.parse_begin_time(text, datetime.now().astimezone()).isoformat())


@dataclass(frozen=True)
class Submission:
    """What to send, and how the CLI should behave afterwards."""

    body: dict
    wait: bool
    parsable: bool
    quiet: bool = False
    test_only: bool = False
    ignored: tuple[str, ...] = ()  #: options given that conductor does not honour (one warning names them)

    def warning(self) -> str | None:
        """The one line that names the options given that conductor does not honour; None if none."""
        if not self.ignored:
            return None
        names = ", ".join(self.ignored)
        return f"{names}: accepted but not honoured by conductor (the job runs without them)"


def split_at_script(argv: list[str], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """sbatch's own rule: the first word that is neither an option nor an option's value is the script,
    and everything after it is the script's (options too).  Returns argv with ``--`` after the script."""
    actions = (parser or build_parser())._option_string_actions
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            return argv
        if not word.startswith("-") or word == "-":
            return [*argv[:index + 1], "--", *argv[index + 1:]]
        name = word.split("=", 1)[0]
        action = actions.get(name) or (actions.get(word[:2]) if not word.startswith("--") else None)
        takes_value = action is not None and action.nargs is None and not isinstance(
            action, (argparse._StoreConstAction, argparse._StoreTrueAction))
        attached = "=" in word or (not word.startswith("--") and len(word) > 2)
        index += 2 if takes_value and not attached else 1
    return argv


def parse(argv: list[str], *, stdin_text: str | None = None, environ: Mapping[str, str] | None = None,
          cwd: Path | None = None, prog: str = "conductor submit") -> Submission:
    """Options from the command line and the script's directives -> the API's submit body."""
    environ = os.environ if environ is None else environ
    parser = build_parser(prog)
    command_line = _parse_command_line(parser, argv)
    if command_line.help:
        raise HelpRequested(parser.format_help())
    cwd = cwd or Path.cwd()
    script, default_name = _script(command_line, stdin_text, cwd)
    options = _merge(_directive_options(parser, script, command_line.script or "(stdin)"), command_line)
    _refuse_unsupported(options)
    body = _body(options, script, default_name, environ, cwd)
    if command_line.script not in (None, "-") and command_line.wrap is None:
        body["job"]["command"] = str((cwd / command_line.script).resolve())
    return Submission(body=body, wait=bool(options.get("wait")), parsable=bool(options.get("parsable")),
                      quiet=bool(options.get("quiet")), test_only=bool(options.get("test_only")),
                      ignored=tuple(options.get("ignored", ())))


def _directive_options(parser: argparse.ArgumentParser, script: str, source: str) -> argparse.Namespace:
    """The #SBATCH lines, read one by one (a later line overrides an earlier one); a bad one is named
    by its file and line: ``job.sh:3: #SBATCH --time=x: ...``."""
    try:
        lines = directives.directive_lines(script)
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None
    merged = argparse.Namespace()
    for number, line, tokens in lines:
        try:
            parsed = parser.parse_args([*tokens, "-"])
        except UsageError as exc:
            raise UsageError(f"{source}:{number}: {line.strip()}: {exc}") from None
        for key, value in vars(parsed).items():
            if key == "ignored" and value:
                merged.ignored = list(dict.fromkeys([*(getattr(merged, "ignored", None) or []), *value]))
            elif value is not None and key not in ("script", "args"):
                setattr(merged, key, value)
    return merged


class HelpRequested(Exception):
    """-h/--help: the message is the help text."""


def _script(options: argparse.Namespace, stdin_text: str | None, cwd: Path) -> tuple[str, str]:
    if options.wrap is not None:
        if options.script is not None:
            raise UsageError("--wrap takes the command; do not give a script as well")
        return WRAP_TEMPLATE.format(command=options.wrap), "wrap"
    if options.script in (None, "-"):
        text = sys.stdin.read() if stdin_text is None else stdin_text
        return _batch_script(text), "sbatch"
    path = cwd / options.script
    try:
        return _batch_script(path.read_text(encoding="utf-8")), path.name
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"Unable to open file {options.script}: {exc.strerror or exc}") from None


#: sbatch's words for a script without an interpreter line.
NOT_A_BATCH_SCRIPT = ("This does not look like a batch script.  The first\n"
                      "line must start with #! followed by the path to an interpreter.\n"
                      "For instance: #!/bin/sh")


def _batch_script(text: str) -> str:
    """The script, if sbatch would take it: not empty, and its first line a #! line."""
    if not text.strip():
        raise ScriptError("Batch script is empty!")
    if not text.startswith("#!"):
        raise ScriptError(NOT_A_BATCH_SCRIPT)
    return text


def _merge(from_script: argparse.Namespace, command_line: argparse.Namespace) -> dict:
    merged = {key: value for key, value in vars(from_script).items() if value is not None}
    ignored = [*(merged.get("ignored") or []), *(getattr(command_line, "ignored", None) or [])]
    merged.update({key: value for key, value in vars(command_line).items() if value is not None})
    merged["ignored"] = list(dict.fromkeys(ignored))
    merged["args"] = command_line.args or []
    return merged


def _refuse_unsupported(options: dict) -> None:
    if options.get("mem") is not None and options.get("mem_per_cpu") is not None:
        raise UsageError("--mem and --mem-per-cpu are mutually exclusive")
    given = [flag for key, flag in (("gpus", "--gpus"), ("gpus_per_node", "--gpus-per-node"), ("gres", "--gres"))
             if options.get(key) is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} are mutually exclusive")


def _layout(options: dict) -> tuple[int, int, int]:
    """(nodes, tasks per node, GPUs per node) from -N, -n, --ntasks-per-node, --gpus, --gres, as sbatch does."""
    try:
        layout = slurm_options.layout(options.get("ntasks"), options.get("ntasks_per_node"), options.get("nodes"))
    except slurm_options.TaskCountMismatch as exc:
        raise UsageError(f"-n {exc.tasks} is not --ntasks-per-node {exc.tasks_per_node} x -N {exc.nodes}") from None
    gpus = options.get("gpus_per_node") or options.get("gres") or 0
    if options.get("gpus") is not None:
        try:
            gpus = slurm_options.gpus_per_node(options["gpus"], layout.nodes)
        except ValueError:
            raise UsageError(f"--gpus {options['gpus']} cannot be spread evenly over {layout.nodes} nodes; "
                             "use --gpus-per-node") from None
    return layout.nodes, layout.tasks_per_node, gpus


def _body(options: dict, script: str, default_name: str, environ: Mapping[str, str], cwd: Path) -> dict:
    """The submit body: options as given (the API derives the rest: tasks per node from -n, memory
    from --mem-per-cpu, GPUs per node from -G), since the job's SLURM_* variables name only those."""
    nodes, _, _ = _layout(options)
    export = options.get("export")
    environment = export_environment(export or "ALL", environ)
    # sbatch puts these in the job's environment at submit (sbatch.c: _set_submit_dir_env, _set_prio_process_env).
    environment.update(SLURM_SUBMIT_DIR=str(cwd), SLURM_SUBMIT_HOST=socket.gethostname().split(".")[0],
                       SLURM_PRIO_PROCESS=str(os.getpriority(os.PRIO_PROCESS, 0)))
    job: dict = {
        "name": options.get("name", default_name), "account": options.get("account", ""),
        "argv": list(options["args"]), "user": getpass.getuser(), "environment": environment,
        "current_working_directory": str((cwd / options.get("chdir", ".")).resolve()),
    }
    if nodes != 1:
        job["nodes"] = nodes
    if options.get("exclusive") is not None:
        job["exclusive"] = True
    if options.get("get_user_env") is not None:
        job["get_user_env"] = True
    renames = {"partition": "partition", "time": "time_limit", "output": "standard_output",
               "error": "standard_error", "requeue": "requeue", "nice": "nice", "priority": "priority",
               "array": "array", "dependency": "dependency", "kill_on_invalid_dep": "kill_on_invalid_dependency",
               "hold": "hold", "begin": "begin_time", "cpus_per_task": "cpus_per_task",
               "ntasks_per_node": "ntasks_per_node", "ntasks": "tasks", "mem": "memory_per_node",
               "mem_per_cpu": "memory_per_cpu", "gpus": "gpus", "gpus_per_node": "gpus_per_node",
               "comment": "comment", "open_mode": "open_mode", "warning_signal": "signal", "export": "export"}
    job.update({api: options[key] for key, api in renames.items() if options.get(key) is not None})
    if options.get("gres") is not None:
        job["tres_per_node"] = f"gres/gpu:{options['gres']}"
    return {"job": job, "script": script}


def export_environment(spec: str, environ: Mapping[str, str]) -> dict[str, str]:
    """sbatch's --export: ALL (default), NONE, or [ALL,]VAR[=VALUE],... (SLURM_* always pass)."""
    items = [item for item in spec.split(",") if item]
    names = [item for item in items if item.upper() not in ("ALL", "NONE", "NIL")]
    keep_all = any(item.upper() == "ALL" for item in items) or not items
    if any(item.upper() in ("NONE", "NIL") for item in items) and not names:
        keep_all = False
    result = dict(environ) if keep_all else {k: v for k, v in environ.items() if k.startswith("SLURM_")}
    for item in names:
        key, sep, value = item.partition("=")
        if sep:
            result[key] = value
        elif key in environ:
            result[key] = environ[key]
    return result
