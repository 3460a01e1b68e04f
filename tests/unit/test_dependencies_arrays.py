"""--dependency and --array parsing and evaluation, and the policy's use of them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conductor import arrays, dependencies, policy
from conductor.dependencies import ArrayState, Facts, Ref, Verdict
from conductor.jobs import JobState, Reason
from conductor.resources import Node, Resources

S = JobState


@pytest.mark.parametrize(("text", "states", "verdict"), [
    ("afterok:1", {1: S.COMPLETED}, Verdict.MET),
    ("afterok:1", {1: S.FAILED}, Verdict.NEVER),
    ("afterok:1", {1: S.RUNNING}, Verdict.WAIT),
    ("afternotok:1", {1: S.FAILED}, Verdict.MET),
    ("afternotok:1", {1: S.COMPLETED}, Verdict.NEVER),
    ("afternotok:1", {1: S.CANCELLED}, Verdict.MET),
    ("afterany:1", {1: S.TIMEOUT}, Verdict.MET),
    ("afterany:1", {1: S.PENDING}, Verdict.WAIT),
    ("after:1", {1: S.RUNNING}, Verdict.MET),
    ("after:1", {1: S.PENDING}, Verdict.WAIT),
    ("afterok:1:2", {1: S.COMPLETED, 2: S.RUNNING}, Verdict.WAIT),
    ("afterok:1,afterany:2", {1: S.COMPLETED, 2: S.FAILED}, Verdict.MET),
    ("afterok:1,afterany:2", {1: S.FAILED, 2: S.RUNNING}, Verdict.NEVER),
    ("afterok:1?afterok:2", {1: S.FAILED, 2: S.RUNNING}, Verdict.WAIT),
    ("afterok:1?afterok:2", {1: S.FAILED, 2: S.COMPLETED}, Verdict.MET),
    ("afterok:1?afterok:2", {1: S.FAILED, 2: S.CANCELLED}, Verdict.NEVER),
    ("afterok:9", {}, Verdict.NEVER),
])
def test_dependency_verdicts(text: str, states: dict, verdict: Verdict) -> None:
    assert dependencies.evaluate(dependencies.parse(text), Facts(jobs=states)) is verdict


def test_singleton_waits_while_a_namesake_is_active() -> None:
    parsed = dependencies.parse("singleton")
    assert parsed.singleton and parsed.job_ids == set()
    assert dependencies.evaluate(parsed, Facts(), singleton_clear=False) is Verdict.WAIT
    assert dependencies.evaluate(parsed, Facts(), singleton_clear=True) is Verdict.MET


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"), ("afterwards:1", "not a dependency type"), ("afterok", "expected afterok:JOBID"),
    ("afterok:x", "expected afterok:JOBID"), ("afterok:1,afterok:2?afterok:3", "either"),
    ("singleton:3", "takes no job ids"), ("afterok:0", "expected afterok:JOBID"), ("afterok:4_x", "40_2 or 40_\\*"),
    ("afterok:_2", "expected"), ("aftercorr:40_2", "whole arrays"), ("afterok:4:", "expected"),
])
def test_bad_dependencies(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dependencies.parse(text)


@pytest.mark.parametrize(("text", "indexes", "limit"), [
    ("0-3", (0, 1, 2, 3), None), ("1,3,5", (1, 3, 5), None), ("0-15:4", (0, 4, 8, 12), None),
    ("0-99%10", tuple(range(100)), 10), ("7", (7,), None), ("1-3,2-4", (1, 2, 3, 4), None),
])
def test_array_specs(text: str, indexes: tuple, limit: int | None) -> None:
    assert arrays.parse(text) == arrays.ArraySpec(indexes, limit)


@pytest.mark.parametrize(("text", "message"), [
    ("3-1", "empty"), ("0-10:0", "step"), ("a-b", "use N"), ("0-3%0", "at least 1"), ("0-1001", "above"),
    ("", "use N"),
])
def test_bad_arrays(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        arrays.parse(text)


def test_blocked_reason_order() -> None:
    now = datetime.now(timezone.utc)
    later = now + timedelta(hours=1)
    assert policy.blocked_reason(hold="user", begin_time=later, now=now, dependency=Verdict.WAIT) == Reason.HELD_USER
    assert policy.blocked_reason(hold="admin", begin_time=None, now=now, dependency=None) == Reason.HELD_ADMIN
    assert policy.blocked_reason(hold=None, begin_time=later, now=now, dependency=Verdict.NEVER) == \
        Reason.DEPENDENCY_NEVER
    assert policy.blocked_reason(hold=None, begin_time=later, now=now, dependency=Verdict.WAIT) == Reason.DEPENDENCY
    assert policy.blocked_reason(hold=None, begin_time=later, now=now, dependency=Verdict.MET) == Reason.BEGIN_TIME
    assert policy.blocked_reason(hold=None, begin_time=now, now=now, dependency=Verdict.MET) is None


def test_array_throttle_in_a_pass() -> None:
    node = Node("n", "n", Resources(32, 1024))
    tasks = [policy.Candidate(i, "p", Resources(1), 0, float(i), array_job_id=10, array_max_running=2)
             for i in range(10, 15)]
    other = policy.Candidate(99, "p", Resources(1), 0, 99.0)
    plan = policy.plan_pass([*tasks, other], [node], 10, array_running={10: 1})
    assert [a.job_id for a in plan.starts] == [10, 99]
    assert {plan.reasons[i] for i in (11, 12, 13, 14)} == {Reason.ARRAY_TASK_LIMIT}


# -- dependencies on arrays ----------------------------------------------------------------

def test_job_ids_name_jobs_tasks_and_whole_arrays() -> None:
    parsed = dependencies.parse("afterok:40:41_2,afterany:50_*")
    assert [term.refs for term in parsed.terms] == [(Ref(40), Ref(41, 2)), (Ref(50, whole_array=True),)]
    assert parsed.job_ids == {40, 41, 50} and [str(ref) for ref in parsed.terms[0].refs] == ["40", "41_2"]
    assert str(parsed.terms[1].refs[0]) == "50_*"


RUNNING = ArrayState(running=True, completed=True)  # one task still running, the others completed
ALL_OK = ArrayState(completed=True)
ONE_FAILED = ArrayState(completed=True, not_ok=True)
TWO_QUEUED = ArrayState(pending=True)
STARTED_SOME = ArrayState(pending=True, running=True)


@pytest.mark.parametrize(("kind", "array", "verdict"), [
    ("afterok", RUNNING, Verdict.WAIT), ("afterok", ALL_OK, Verdict.MET), ("afterok", ONE_FAILED, Verdict.NEVER),
    ("afterok", ArrayState(running=True, not_ok=True), Verdict.WAIT),  # as Slurm: the verdict once all ended
    ("afterany", RUNNING, Verdict.WAIT), ("afterany", ONE_FAILED, Verdict.MET), ("afterany", ALL_OK, Verdict.MET),
    ("afterany", TWO_QUEUED, Verdict.WAIT),
    ("afternotok", RUNNING, Verdict.WAIT), ("afternotok", ONE_FAILED, Verdict.MET),
    ("afternotok", ALL_OK, Verdict.NEVER), ("afternotok", ArrayState(not_ok=True), Verdict.MET),
    ("after", STARTED_SOME, Verdict.WAIT), ("after", RUNNING, Verdict.MET), ("after", TWO_QUEUED, Verdict.WAIT),
    ("after", ArrayState(not_ok=True), Verdict.MET),  # every task cancelled before it started: met, as Slurm
])
def test_an_array_id_waits_for_every_task(kind: str, array: ArrayState, verdict: Verdict) -> None:
    # The array's own id (40) is also its first task's: that task's COMPLETED state must not decide.
    facts = Facts(jobs={40: S.COMPLETED}, arrays={40: array})
    assert dependencies.evaluate(dependencies.parse(f"{kind}:40"), facts) is verdict
    assert dependencies.evaluate(dependencies.parse(f"{kind}:40_*"), facts) is verdict


def test_a_task_id_depends_on_that_task_only() -> None:
    facts = Facts(jobs={40: S.RUNNING}, arrays={40: RUNNING}, tasks={(40, 2): S.COMPLETED, (40, 3): S.FAILED})
    assert dependencies.evaluate(dependencies.parse("afterok:40_2"), facts) is Verdict.MET
    assert dependencies.evaluate(dependencies.parse("afterok:40_3"), facts) is Verdict.NEVER
    assert dependencies.evaluate(dependencies.parse("afterok:40_9"), facts) is Verdict.NEVER  # no such task
    assert dependencies.evaluate(dependencies.parse("afterok:40_2,afterok:40"), facts) is Verdict.WAIT


def test_aftercorr_pairs_tasks_by_index() -> None:
    parsed = dependencies.parse("aftercorr:40")
    facts = Facts(jobs={40: S.COMPLETED}, arrays={40: STARTED_SOME},
                  tasks={(40, 1): S.COMPLETED, (40, 2): S.RUNNING, (40, 3): S.FAILED})
    verdicts = {task: dependencies.evaluate(parsed, facts, task_id=task) for task in (1, 2, 3)}
    assert verdicts == {1: Verdict.MET, 2: Verdict.WAIT, 3: Verdict.NEVER}
    assert dependencies.needed_tasks(parsed, 7) == {(40, 7)} and dependencies.needed_tasks(parsed, None) == set()


@pytest.mark.parametrize(("array", "verdict"), [(STARTED_SOME, Verdict.WAIT), (ALL_OK, Verdict.MET),
                                                (ONE_FAILED, Verdict.NEVER)])
def test_aftercorr_without_a_counterpart_waits_for_the_whole_array(array: ArrayState, verdict: Verdict) -> None:
    """Slurm's rule: task 9 of the dependent array (array 40 has no task 9), or a job that is no array task."""
    facts = Facts(jobs={40: S.COMPLETED}, arrays={40: array}, tasks={(40, 1): S.COMPLETED})
    parsed = dependencies.parse("aftercorr:40")
    assert dependencies.evaluate(parsed, facts, task_id=9) is verdict
    assert dependencies.evaluate(parsed, facts, task_id=None) is verdict


def test_aftercorr_on_a_plain_job_is_afterok_on_it() -> None:
    parsed = dependencies.parse("aftercorr:7")
    assert dependencies.evaluate(parsed, Facts(jobs={7: S.COMPLETED}), task_id=3) is Verdict.MET
    assert dependencies.evaluate(parsed, Facts(jobs={7: S.TIMEOUT}), task_id=3) is Verdict.NEVER


@pytest.mark.parametrize(("text", "facts", "shown"), [
    ("afterok:40", Facts(jobs={40: S.COMPLETED}, arrays={40: RUNNING}), "afterok:40_*(unfulfilled)"),
    ("afterok:40", Facts(jobs={40: S.COMPLETED}, arrays={40: ONE_FAILED}), "afterok:40_*(failed)"),
    ("afterok:40", Facts(jobs={40: S.COMPLETED}, arrays={40: ALL_OK}), None),
    ("afterok:7:8", Facts(jobs={7: S.COMPLETED, 8: S.RUNNING}), "afterok:8(unfulfilled)"),
    ("afterok:7,afterany:40_2", Facts(jobs={7: S.FAILED}, tasks={(40, 2): S.PENDING}),
     "afterok:7(failed),afterany:40_2(unfulfilled)"),
    ("afterok:7?afterok:8", Facts(jobs={7: S.FAILED, 8: S.RUNNING}), "afterok:7(failed)?afterok:8(unfulfilled)"),
    ("afterok:7?afterok:8", Facts(jobs={7: S.FAILED, 8: S.COMPLETED}), None),
    ("aftercorr:40", Facts(jobs={40: S.RUNNING}, arrays={40: RUNNING}, tasks={(40, 2): S.RUNNING}),
     "aftercorr:40_*(unfulfilled)"),
    ("singleton", Facts(), "singleton(unfulfilled)"),
])
def test_described_as_slurm_shows_it(text: str, facts: Facts, shown: str | None) -> None:
    clear = text != "singleton"
    assert dependencies.describe(dependencies.parse(text), facts, task_id=2, singleton_clear=clear) == shown


def test_first_missing_names_a_job_or_task_that_does_not_exist() -> None:
    facts = Facts(jobs={40: S.RUNNING}, arrays={40: RUNNING}, tasks={(40, 2): S.RUNNING})
    assert dependencies.first_missing(dependencies.parse("afterok:40:40_2,aftercorr:40"), facts) is None
    assert dependencies.first_missing(dependencies.parse("afterok:40_3"), facts) == Ref(40, 3)
    assert dependencies.first_missing(dependencies.parse("afterany:40?afterok:41"), facts) == Ref(41)


def test_render_shows_the_dependency_as_scontrol_and_squeue() -> None:
    from cli import render

    job = {"job_id": 44, "display_id": "44", "name": "reduce", "user": "u", "account": "", "priority": 0, "nice": 0,
           "state": "PENDING", "reason": "Dependency", "requeue": True, "restart_count": 0, "exit_code": "0:0",
           "submit_time": "2026-11-28T10:00:00Z", "partition": "default", "cpus": 1, "ntasks_per_node": 1,
           "cpus_per_task": 1, "memory_per_node_mb": 0, "working_directory": "/", "stdout_path": "/o",
           "stderr_path": "/o", "dependency": "afterok:40", "dependency_state": "afterok:40_*(unfulfilled)"}
    now = datetime.now(timezone.utc)
    assert "JobState=PENDING Reason=Dependency Dependency=afterok:40_*(unfulfilled)" in render.show_text(job, now)
    assert render.queue_row_with_dependency(job, now)[-1] == "afterok:40_*(unfulfilled)"
    assert render.queue_row_with_dependency({**job, "dependency_state": None}, now)[-1] == "(null)"
    assert render.show_text(job, now).count("Dependency=") == 1


def test_submit_options_and_the_job_environment() -> None:
    from cli import sbatch
    from conductor.jobs import Job, JobSpec, job_environment

    body = sbatch.parse(["--wrap", "true", "-d", "afterok:40_*", "--kill-on-invalid-dep=yes"]).body["job"]
    assert (body["dependency"], body["kill_on_invalid_dependency"]) == ("afterok:40_*", True)
    assert "kill_on_invalid_dependency" not in sbatch.parse(["--wrap", "true"]).body["job"]
    for bad, message in ((["-d", "afterok:4_x"], "-d/--dependency"), (["--kill-on-invalid-dep=maybe"], "yes or no")):
        with pytest.raises(sbatch.UsageError, match=message):
            sbatch.parse(["--wrap", "true", *bad])
    job = Job(7, JobSpec(script="true", dependency="afterok:40"), S.RUNNING, "None", datetime.now(timezone.utc))
    assert job_environment(job, node_name="n")["SLURM_JOB_DEPENDENCY"] == "afterok:40"
    assert "SLURM_JOB_DEPENDENCY" not in job_environment(Job(8, JobSpec(script="true"), S.RUNNING, "None",
                                                             datetime.now(timezone.utc)), node_name="n")
