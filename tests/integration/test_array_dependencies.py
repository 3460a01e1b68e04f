"""Dependencies on job arrays through the real scheduler on a real Ray, on both backends.

A dependency on an array's id waits for every task (Slurm's rule), ``ID_N`` for one task, and
``aftercorr`` pairs the tasks of two arrays by index.  Each task of the arrays below writes a
marker file when it ends, so a dependent job can also see for itself what had finished when
it started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlalchemy import update

from conductor import arrays, jobs
from conductor.db.models import JobRow
from conductor.dependencies import ArrayState
from conductor.service import JobService
from tests.helpers import spec, wait_for

pytestmark = pytest.mark.ray

#: Seconds task N of an array sleeps before it writes its marker (task 3 is the last to end).
LENGTHS_S = {1: 0.3, 2: 1.2, 3: 2.4, 4: 0.6}


@pytest.fixture
def running(settings_factory, scheduler_factory, backend) -> JobService:
    """A service whose scheduler runs (WORKER_CONCURRENCY 8: every task of an array runs at once)."""
    settings = settings_factory(backend, worker_concurrency=8)
    started = JobService.from_settings(settings)
    scheduler_factory(settings)
    return started


def _tasks_script(markers: Path, *, failing: int | None = None, gate: Path | None = None) -> str:
    """Task N sleeps LENGTHS_S[N] (task 3 also waits while ``gate`` exists), leaves done-N, and exits 3
    when it is the failing one."""
    lengths = " ".join(f"[{n}]={s}" for n, s in LENGTHS_S.items())
    fail = f'if [ "$SLURM_ARRAY_TASK_ID" = {failing} ]; then exit 3; fi\n' if failing is not None else ""
    hold = (f'if [ "$SLURM_ARRAY_TASK_ID" = 3 ]; then while [ -e {gate} ]; do sleep 0.05; done; fi\n'
            if gate is not None else "")
    return (f"#!/bin/bash\ndeclare -A length=({lengths})\nsleep ${{length[$SLURM_ARRAY_TASK_ID]}}\n{hold}"
            f"touch {markers}/done-$SLURM_ARRAY_TASK_ID\n{fail}")


def _array(service: JobService, tmp_path: Path, indexes: str = "1-3", **fields) -> list[jobs.Job]:
    script = _tasks_script(tmp_path, failing=fields.pop("failing", None), gate=fields.pop("gate", None))
    return service.submit_array(spec(script, name="parts", working_dir=str(tmp_path), **fields),
                                arrays.parse(indexes))


def _reduce(service: JobService, tmp_path: Path, dependency: str, **fields) -> int:
    """A job that records which markers existed when it started, and its SLURM_JOB_DEPENDENCY."""
    script = (f"#!/bin/bash\nls {tmp_path} | grep '^done-' | sort | tr '\\n' ' '\necho\n"
              "echo \"$SLURM_JOB_DEPENDENCY\"\n")
    return service.submit(spec(script, name="reduce", dependency=dependency, working_dir=str(tmp_path),
                               **fields)).id


def _ended(service: JobService, job_id: int, timeout_s: float = 30) -> jobs.Job:
    return wait_for(lambda: (job := service.get(job_id)).state.is_terminal() and job, timeout_s)


def _reason(service: JobService, job_id: int, reason: str, timeout_s: float = 30) -> jobs.Job:
    return wait_for(lambda: (job := service.get(job_id)).reason == reason and job, timeout_s,
                    message=f"job {job_id} pending with reason {reason}")


def _output(job: jobs.Job) -> str:
    return Path(job.stdout_path).read_text()


def test_afterok_on_an_array_id_waits_for_the_last_task(running: JobService, tmp_path: Path) -> None:
    service = running
    tasks = _array(service, tmp_path)
    array_id = tasks[0].id
    reduce = _reduce(service, tmp_path, f"afterok:{array_id}")
    first = _ended(service, tasks[0].id)  # task 1 (whose id is the array's) ends first ...
    assert first.state is jobs.JobState.COMPLETED
    waiting = service.get(reduce)
    assert (waiting.state, waiting.reason) == (jobs.JobState.PENDING, jobs.Reason.DEPENDENCY)  # ... and changes nothing
    assert service.dependency_states([waiting]) == {reduce: f"afterok:{array_id}_*(unfulfilled)"}
    done = _ended(service, reduce)
    assert done.state is jobs.JobState.COMPLETED
    last_end = max(task.end_time for task in service.repository.get_many(t.id for t in tasks))
    assert done.start_time >= last_end
    assert _output(done) == f"done-1 done-2 done-3 \nafterok:{array_id}\n"  # every part, and SLURM_JOB_DEPENDENCY
    assert service.dependency_states([done]) == {}  # fulfilled: Slurm shows none


def test_afterok_on_an_array_with_a_failed_task_is_never_satisfied(running: JobService, tmp_path: Path) -> None:
    service = running
    tasks = _array(service, tmp_path, failing=1)
    array_id = tasks[0].id
    reduce = _reduce(service, tmp_path, f"afterok:{array_id}")
    killed = _reduce(service, tmp_path, f"afterok:{array_id}", kill_on_invalid_dependency=True)
    failed = _ended(service, tasks[0].id)
    assert failed.state is jobs.JobState.FAILED
    # The verdict comes once every task ended, as Slurm's: while task 3 runs, the job just waits.
    reason_then, last_then = service.get(reduce).reason, service.get(tasks[2].id).state
    if not last_then.is_terminal():
        assert reason_then in (jobs.Reason.NONE, jobs.Reason.DEPENDENCY)
    never = _reason(service, reduce, jobs.Reason.DEPENDENCY_NEVER)
    assert never.state is jobs.JobState.PENDING  # as Slurm: it stays, never satisfied
    assert [t.state for t in sorted(service.repository.get_many(t.id for t in tasks), key=lambda t: t.id)] == [
        jobs.JobState.FAILED, jobs.JobState.COMPLETED, jobs.JobState.COMPLETED]
    assert service.dependency_states([never]) == {reduce: f"afterok:{array_id}_*(failed)"}
    cancelled = _ended(service, killed)  # --kill-on-invalid-dep
    assert (cancelled.state, cancelled.reason, cancelled.start_time) == (
        jobs.JobState.CANCELLED, jobs.Reason.DEPENDENCY_NEVER, None)
    service.cancel([reduce])


def test_afterany_and_afternotok_on_an_array(running: JobService, tmp_path: Path) -> None:
    service = running
    tasks = _array(service, tmp_path, failing=1)
    array_id = tasks[0].id
    on_any = _reduce(service, tmp_path, f"afterany:{array_id}")
    on_not_ok = _reduce(service, tmp_path, f"afternotok:{array_id}")
    ended = [_ended(service, job_id) for job_id in (on_any, on_not_ok)]
    last_end = max(task.end_time for task in service.repository.get_many(t.id for t in tasks))
    for job in ended:
        assert job.state is jobs.JobState.COMPLETED and job.start_time >= last_end
        assert _output(job).startswith("done-1 done-2 done-3 \n")
    good = _array(service, tmp_path)
    nothing_failed = _reduce(service, tmp_path, f"afternotok:{good[0].id}")
    assert _reason(service, nothing_failed, jobs.Reason.DEPENDENCY_NEVER).state is jobs.JobState.PENDING
    service.cancel([nothing_failed])


def test_afterok_on_one_task_waits_for_that_task_only(running: JobService, tmp_path: Path) -> None:
    service, gate = running, tmp_path / "gate"
    gate.touch()  # task 3 waits for it: the dependent job must start while task 3 still runs
    tasks = _array(service, tmp_path, gate=gate)
    second, third = tasks[1], tasks[2]
    after_second = _reduce(service, tmp_path, f"afterok:{tasks[0].id}_2")
    assert service.dependency_states([service.get(after_second)]) == {
        after_second: f"afterok:{tasks[0].id}_2(unfulfilled)"}
    done = _ended(service, after_second)
    gate.unlink()
    second, third = service.get(second.id), _ended(service, third.id)
    assert done.state is jobs.JobState.COMPLETED
    assert second.end_time <= done.start_time < third.end_time
    assert _output(done).split("\n")[0].split() == ["done-1", "done-2"]


def test_aftercorr_pairs_the_tasks_of_two_arrays(running: JobService, tmp_path: Path) -> None:
    service = running
    parts = _array(service, tmp_path, "1-4", failing=4)
    by_index = {task.spec.array_task_id: task.id for task in parts}
    script = "#!/bin/bash\nls {dir} | grep '^done-' | sort | tr '\\n' ' '\n".format(dir=tmp_path)
    follow = service.submit_array(spec(script, name="follow", dependency=f"aftercorr:{parts[0].id}",
                                       working_dir=str(tmp_path)), arrays.parse("1-4"))
    corr = {task.spec.array_task_id: task.id for task in follow}
    for index in (1, 2, 3):
        done = _ended(service, corr[index])
        counterpart = service.get(by_index[index])
        assert done.state is jobs.JobState.COMPLETED and done.start_time >= counterpart.end_time
        assert f"done-{index}" in _output(done).split()
    # Task 1 of the follower did not wait for the whole array: task 3 (2.4 s) was still running.
    assert "done-3" not in _output(service.get(corr[1])).split()
    never = _reason(service, corr[4], jobs.Reason.DEPENDENCY_NEVER)  # its counterpart failed
    assert never.state is jobs.JobState.PENDING
    assert service.dependency_states([never]) == {corr[4]: f"aftercorr:{parts[0].id}_*(failed)"}
    service.cancel([corr[4]])


def test_facts_of_an_array_name_the_states_its_tasks_are_in(repository, tmp_path: Path) -> None:
    """The repository's answer for dependencies, without a scheduler: states found by index probes."""
    tasks = repository.add_array(spec("true", working_dir=str(tmp_path)), range(1, 7))
    plain = repository.add_job(spec("true", working_dir=str(tmp_path)))
    array_id = tasks[0].id
    facts = repository.dependency_facts({array_id, plain.id, 999_999}, {(array_id, 2), (array_id, 9)})
    assert facts.jobs == {array_id: jobs.JobState.PENDING, plain.id: jobs.JobState.PENDING}
    assert facts.arrays == {array_id: ArrayState(pending=True)}
    assert facts.tasks == {(array_id, 2): jobs.JobState.PENDING}  # no task 9
    with repository.engine.begin() as connection:
        for task, state in zip(tasks, ["COMPLETED", "RUNNING", "TIMEOUT", "COMPLETED", "COMPLETED", "COMPLETED"]):
            connection.execute(update(JobRow).where(JobRow.id == task.id).values(state=state))
    assert repository.dependency_facts([array_id]).arrays == {
        array_id: ArrayState(running=True, completed=True, not_ok=True)}
    assert repository.cancel_invalid_dependents([plain.id, tasks[1].id]) == [plain.id]  # only PENDING ones
    cancelled = repository.get(plain.id)
    assert (cancelled.state, cancelled.reason) == (jobs.JobState.CANCELLED, jobs.Reason.DEPENDENCY_NEVER)
