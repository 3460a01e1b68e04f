"""#SBATCH directives and the sbatch option parser of `conductor submit`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import sbatch
from conductor.directives import directive_arguments


def test_directives_before_the_first_command_are_read() -> None:
    script = ("#!/bin/bash\n"
              "#SBATCH -J train   # the name\n"
              "\n"
              "# an ordinary comment\n"
              "   # an indented comment\n"
              "#SBATCH --mem=8G -c 4\n"
              "#CONDUCTOR -p gpu\n"
              "echo start\n"
              "#SBATCH -A ignored-after-the-first-command\n")
    assert directive_arguments(script) == ["-J", "train", "--mem=8G", "-c", "4", "-p", "gpu"]


def test_directive_must_start_at_column_zero_and_be_the_whole_word() -> None:
    script = "#!/bin/bash\n  #SBATCH -J indented\n#SBATCHX -J glued\n#SBATCH -J real\n"
    assert directive_arguments(script) == ["-J", "real"]


def test_directive_arguments_are_split_like_a_shell() -> None:
    assert directive_arguments('#SBATCH -J "two words" --output=a\\ b.txt\n') == ["-J", "two words",
                                                                                  "--output=a b.txt"]


def test_unbalanced_quote_is_an_error_naming_the_line() -> None:
    with pytest.raises(ValueError, match="#SBATCH -J \"oops"):
        directive_arguments('#SBATCH -J "oops\n')


def _parse(tmp_path: Path, argv: list[str], script: str | None = None, environ: dict | None = None):
    if script is not None:
        (tmp_path / "job.sh").write_text(script)
    return sbatch.parse(argv, environ=environ or {"HOME": "/h", "SLURM_X": "1"}, cwd=tmp_path)


def test_command_line_overrides_directives(tmp_path: Path) -> None:
    script = "#!/bin/bash\n#SBATCH -J from-script -c 2 --mem 1G -t 10\ntrue\n"
    job = _parse(tmp_path, ["-c", "4", "job.sh", "arg1", "--", "--arg2"], script).body["job"]
    assert (job["name"], job["cpus_per_task"], job["memory_per_node"], job["time_limit"]) == (
        "from-script", 4, 1024, "10")
    assert job["argv"] == ["arg1", "--arg2"]
    assert job["current_working_directory"] == str(tmp_path.resolve())


def test_defaults_name_from_script_file_and_all_options_map(tmp_path: Path) -> None:
    submission = _parse(tmp_path, ["-A", "acct", "-p", "part", "-n", "3", "--mem-per-cpu=512", "-o", "o-%j",
                                   "-e", "e-%j", "-D", "sub", "--no-requeue", "--nice", "--priority", "7",
                                   "--parsable", "-W", "job.sh"], "#!/bin/bash\ntrue\n")
    job = submission.body["job"]
    assert job["name"] == "job.sh"
    assert (job["account"], job["partition"], job["tasks"], job["memory_per_cpu"]) == ("acct", "part", 3, 512)
    submitted = _spec(submission.body)
    assert (submitted.ntasks_per_node, submitted.memory_per_node_mb, submitted.memory_per_cpu_mb) == (3, 1536, 512)
    assert (job["standard_output"], job["standard_error"], job["requeue"], job["nice"], job["priority"]) == (
        "o-%j", "e-%j", False, 100, 7)
    assert job["current_working_directory"] == str((tmp_path / "sub").resolve())
    assert submission.parsable and submission.wait


@pytest.mark.parametrize(("argv", "layout"), [
    (["-N", "2", "-c", "4"], (2, 1, 0)),
    (["-N", "2-4", "--gpus", "4"], (2, 1, 2)),
    (["-n", "8", "--ntasks-per-node", "4"], (2, 4, 0)),
    (["-n", "6", "-N", "2"], (2, 3, 0)),
    (["-n", "3"], (1, 3, 0)),
    (["--gres", "gpu:a100:2"], (1, 1, 2)),
    (["--gpus-per-node", "1", "-N", "3"], (3, 1, 1)),
])
def test_nodes_tasks_and_gpus_are_laid_out_as_sbatch_does(tmp_path: Path, argv: list[str],
                                                          layout: tuple[int, int, int]) -> None:
    submitted = _spec(_parse(tmp_path, [*argv, "job.sh"], "#!/bin/bash\ntrue\n").body)
    assert (submitted.nodes, submitted.ntasks_per_node, submitted.gpus_per_node) == layout


def _spec(body: dict):  # noqa: ANN202 - a JobSpec
    """What the API makes of a submit body (it derives per-node values from what was given)."""
    from api.schemas import SubmitRequest

    return SubmitRequest.model_validate(body).to_spec(default_dir="/")


def test_options_after_the_script_are_options_until_double_dash(tmp_path: Path) -> None:
    job = _parse(tmp_path, ["job.sh", "-c", "4", "--mem", "8G", "x", "--", "-c", "9"], "#!/bin/bash\n").body["job"]
    assert (job["cpus_per_task"], job["memory_per_node"], job["argv"]) == (4, 8192, ["x", "-c", "9"])


def test_wrap_builds_a_sh_script(tmp_path: Path) -> None:
    body = _parse(tmp_path, ["--wrap", "echo hi; hostname"]).body
    assert body["script"].startswith("#!/bin/sh\n") and body["script"].endswith("echo hi; hostname\n")
    assert body["job"]["name"] == "wrap"


def test_script_from_stdin_is_named_sbatch(tmp_path: Path) -> None:
    submission = sbatch.parse([], stdin_text="#!/bin/bash\n#SBATCH -c 3\ntrue\n", environ={}, cwd=tmp_path)
    assert (submission.body["job"]["name"], submission.body["job"]["cpus_per_task"]) == ("sbatch", 3)


@pytest.mark.parametrize(("argv", "message"), [
    (["-c", "0", "job.sh"], "must be at least 1"),
    (["--mem", "8X", "job.sh"], "not a size"),
    (["-t", "1:2:3:4", "job.sh"], "not a time limit"),
    (["--mem", "1G", "--mem-per-cpu", "1G", "job.sh"], "mutually exclusive"),
    (["-N", "3-2", "job.sh"], "maximum is below the minimum"),
    (["-N", "2", "-G", "3", "job.sh"], "cannot be spread evenly over 2 nodes"),
    (["--gres", "mps:2", "job.sh"], "only gpu:N"),
    (["--gpus", "1", "--gres", "gpu:1", "job.sh"], "mutually exclusive"),
    (["-n", "5", "--ntasks-per-node", "2", "-N", "2", "job.sh"], "is not --ntasks-per-node 2 x -N 2"),
    (["-a", "0-3%0", "job.sh"], "at least 1"),
    (["-b", "tomorrowish", "job.sh"], "is not a time"),
    (["--bogus", "job.sh"], "unrecognized arguments"),
    (["missing.sh"], "Unable to open file missing.sh"),
])
def test_bad_options_are_usage_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    (tmp_path / "job.sh").write_text("#!/bin/bash\ntrue\n")
    with pytest.raises(sbatch.UsageError, match=message.replace("(", r"\(")):
        sbatch.parse(argv, environ={}, cwd=tmp_path)


def test_a_bad_directive_is_a_usage_error_too(tmp_path: Path) -> None:
    with pytest.raises(sbatch.UsageError, match="must be at least 1"):
        _parse(tmp_path, ["job.sh"], "#!/bin/bash\n#SBATCH -c 0\ntrue\n")


@pytest.mark.parametrize(("spec", "expected"), [
    ("ALL", {"HOME": "/h", "SLURM_X": "1", "A": "a"}),
    ("NONE", {"SLURM_X": "1"}),
    ("A,B=2", {"SLURM_X": "1", "A": "a", "B": "2"}),
    ("ALL,B=2", {"HOME": "/h", "SLURM_X": "1", "A": "a", "B": "2"}),
])
def test_export(spec: str, expected: dict) -> None:
    assert sbatch.export_environment(spec, {"HOME": "/h", "SLURM_X": "1", "A": "a"}) == expected
