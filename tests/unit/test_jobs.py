"""conductor.jobs: states, exit codes, output patterns and the job environment."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conductor.jobs import TERMINAL_STATES, Job, JobState, Reason, expand_output_pattern, job_environment
from conductor.resources import Resources
from tests.helpers import spec

SUBMITTED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def make_job(**fields: object) -> Job:
    values: dict[str, object] = dict(id=17, spec=spec("echo hi"), state=JobState.PENDING, reason=Reason.NONE,
                                     submit_time=SUBMITTED)
    values.update(fields)
    return Job(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "terminal", "short"),
    [
        (JobState.PENDING, False, "PD"),
        (JobState.RUNNING, False, "R"),
        (JobState.COMPLETED, True, "CD"),
        (JobState.FAILED, True, "F"),
        (JobState.CANCELLED, True, "CA"),
        (JobState.TIMEOUT, True, "TO"),
        (JobState.OUT_OF_MEMORY, True, "OOM"),
        (JobState.NODE_FAIL, True, "NF"),
    ],
)
def test_state_terminality_and_short_code(state: JobState, terminal: bool, short: str) -> None:
    assert state.is_terminal() is terminal
    assert state.short == short
    assert (state in TERMINAL_STATES) is terminal


def test_every_state_is_covered() -> None:
    assert len(JobState) == 8
    assert TERMINAL_STATES == {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT,
                               JobState.OUT_OF_MEMORY, JobState.NODE_FAIL}


@pytest.mark.parametrize(
    ("exit_code", "signal", "text"),
    [(None, None, "0:0"), (0, None, "0:0"), (3, None, "3:0"), (0, 9, "0:9"), (None, 15, "0:15"), (255, 0, "255:0")],
)
def test_exit_code_text(exit_code: int | None, signal: int | None, text: str) -> None:
    assert make_job(exit_code=exit_code, signal=signal).exit_code_text == text


def test_job_spec_resources_per_node_and_in_all() -> None:
    one = spec("x", cpus_per_task=3, ntasks_per_node=4, memory_per_node_mb=512)
    assert one.per_node == one.total == Resources(12, 512, 0)
    two = spec("x", cpus_per_task=3, ntasks_per_node=4, memory_per_node_mb=512, nodes=2, gpus_per_node=1)
    assert two.per_node == Resources(12, 512, 1)
    assert two.total == Resources(24, 1024, 2)  # a -N 2 job holds twice its per-node request


# ---- output patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("conductor-%j.out", "conductor-42.out"),
        ("%x.%u.log", "train.alice.log"),
        ("100%%-%j", "100%-42"),
        ("%%j", "%j"),
        ("%4j", "0042"),
        ("%2j", "42"),
        ("%10j", "0000000042"),
        ("%A_%a", "42_4294967294"),  # not an array job: %A is the job id, %a Slurm's NO_VAL
        ("%N-%n", "node7-0"),
        ("%5x", "train"),  # padding applies to numbers only
        ("plain.txt", "plain.txt"),
        ("%z%", "%z%"),  # unknown codes stay literal
        ("/out/%u/%x-%j.err", "/out/alice/train-42.err"),
    ],
)
def test_expand_output_pattern(pattern: str, expected: str) -> None:
    assert expand_output_pattern(pattern, job_id=42, name="train", user="alice", node="node7") == expected


def test_expand_output_pattern_for_an_array_task() -> None:
    assert expand_output_pattern("%A_%a.%3a", job_id=50, name="n", user="u", array_job_id=40,
                                 array_task_id=7) == "40_7.007"


# ---- the job environment -------------------------------------------------------------------


def test_job_environment_sets_slurm_and_conductor_variables() -> None:
    job_spec = spec("echo hi", name="train", user="alice", account="physics", partition="gpu", cpus_per_task=2,
                    ntasks_per_node=3, memory_per_node_mb=4096, working_dir="/home/alice/run",
                    environment={"MY_VAR": "value", "OMP_NUM_THREADS": "2"})
    env = job_environment(make_job(id=123, spec=job_spec, restart_count=1), node_name="node7")
    expected = {
        "JOB_ID": "123",
        "JOB_NAME": "train",
        "JOB_USER": "alice",
        "JOB_ACCOUNT": "physics",
        "JOB_PARTITION": "gpu",
        "JOB_NODELIST": "node7",
        "CPUS_PER_TASK": "2",
        "NTASKS_PER_NODE": "3",
        "NTASKS": "3",
        "CPUS_ON_NODE": "6",
        "MEM_PER_NODE": "4096",
        "SUBMIT_DIR": "/home/alice/run",
        "RESTART_COUNT": "1",
        "JOB_NUM_NODES": "1",
    }
    for key, value in expected.items():
        assert env[f"CONDUCTOR_{key}"] == value, key
    assert env["SLURM_JOBID"] == "123"
    assert env["SLURMD_NODENAME"] == "node7"
    assert env["MY_VAR"] == "value"
    assert env["OMP_NUM_THREADS"] == "2"


def test_job_environment_does_not_change_the_spec() -> None:
    job_spec = spec("echo hi", environment={"A": "1"})
    job_environment(make_job(spec=job_spec), node_name="n")
    assert job_spec.environment == {"A": "1"}


def test_job_environment_overrides_user_values_of_slurm_variables() -> None:
    job_spec = spec("echo hi", environment={"SLURM_JOB_ID": "999", "KEEP": "yes"})
    env = job_environment(make_job(id=5, spec=job_spec), node_name="n")
    assert env["SLURM_JOB_ID"] == "5"
    assert env["KEEP"] == "yes"


@pytest.mark.parametrize(("text", "job_id", "task_id"), [("42", 42, None), ("40_2", 40, 2), (" 7 ", 7, None),
                                                          ("40_0", 40, 0)])
def test_job_refs_as_slurm_names_them(text: str, job_id: int, task_id: int | None) -> None:
    from conductor.jobs import JobRef, parse_job_ref

    assert parse_job_ref(text) == JobRef(job_id, task_id)
    assert str(parse_job_ref(text)) == text.strip()


@pytest.mark.parametrize("text", ["42420__4", "4_2_4", "0", "-1", "abc", "4２", "١٢", "42.batch", "", "_4", "4_"])
def test_job_refs_refuse_what_int_would_misread(text: str) -> None:
    from conductor.jobs import parse_job_ref

    with pytest.raises(ValueError, match="is not a job id"):
        parse_job_ref(text)


@pytest.mark.parametrize(("text", "signal", "lead_s", "batch_only"), [
    ("USR2@90", 12, 90, False), ("B:USR1@30", 10, 30, True), ("SIGTERM", 15, 60, False), ("10@0", 10, 0, False),
    ("RB:INT@5", 2, 5, True), ("R:HUP", 1, 60, False)])
def test_warning_signal(text: str, signal: int, lead_s: int, batch_only: bool) -> None:
    from conductor.jobs import WarningSignal, parse_warning_signal

    assert parse_warning_signal(text) == WarningSignal(signal, lead_s, batch_only)
    assert parse_warning_signal(str(parse_warning_signal(text))) == parse_warning_signal(text)


@pytest.mark.parametrize("text", ["FOO@5", "USR1@-1", "USR1@70000", "X:USR1", ":USR1", "USR1@x", "99@1"])
def test_warning_signal_refused(text: str) -> None:
    from conductor.jobs import parse_warning_signal

    with pytest.raises(ValueError):
        parse_warning_signal(text)
