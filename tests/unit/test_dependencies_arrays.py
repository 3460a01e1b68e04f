"""--dependency and --array parsing and evaluation, and the policy's use of them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conductor import arrays, dependencies, policy
from conductor.dependencies import Verdict
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
    assert dependencies.evaluate(dependencies.parse(text), states) is verdict


def test_singleton_waits_while_a_namesake_is_active() -> None:
    parsed = dependencies.parse("singleton")
    assert parsed.singleton and parsed.job_ids == set()
    assert dependencies.evaluate(parsed, {}, singleton_clear=False) is Verdict.WAIT
    assert dependencies.evaluate(parsed, {}, singleton_clear=True) is Verdict.MET


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"), ("afterwards:1", "not a dependency type"), ("afterok", "expected afterok:JOBID"),
    ("afterok:x", "expected afterok:JOBID"), ("afterok:1,afterok:2?afterok:3", "either"),
    ("singleton:3", "takes no job ids"),
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
