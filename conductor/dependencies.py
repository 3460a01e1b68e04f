"""sbatch's --dependency: parsing, evaluation and Slurm's display.  Pure functions, no I/O.

Forms: ``after:ID[:ID...]`` (the jobs have started, or were cancelled before they did),
``afterany`` (ended), ``afterok`` (ended COMPLETED), ``afternotok`` (ended in any other
state), ``aftercorr`` (task N of this array after task N of array ID ended COMPLETED),
``singleton`` (no earlier job of the same name and user is pending or running).  ``,``
joins with AND, ``?`` with OR; one expression uses one of them (as Slurm).

An ID is a job (``42``), one task of an array (``40_2``) or a whole array (``40_*``; an
array's own id, ``40``, means the same, as in Slurm).  A whole array meets ``afterok`` when
every task ended COMPLETED, ``afternotok`` when every task ended and one did not complete,
``afterany`` when every task ended and ``after`` when none is pending.  A task of the
dependent array with no counterpart in the ``aftercorr`` array waits for the whole array
(Slurm's rule).  A dependency that can no longer be met (``afterok`` on a FAILED job)
leaves the job PENDING with reason DependencyNeverSatisfied (or cancels it, with
--kill-on-invalid-dep); the verdict on an array comes once all its tasks ended, as Slurm's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping

from conductor.jobs import JobState

KINDS = ("after", "afterany", "afterok", "afternotok", "aftercorr", "singleton")


class Verdict(str, Enum):
    """What a dependency says about a job now."""

    MET = "met"
    WAIT = "wait"
    NEVER = "never"


@dataclass(frozen=True)
class Ref:
    """One job a term names: ``42``, ``40_2`` (task 2 of array 40) or ``40_*`` (all of array 40)."""

    job_id: int
    task_id: int | None = None
    whole_array: bool = False  #: written ``40_*``

    def __str__(self) -> str:
        if self.task_id is not None:
            return f"{self.job_id}_{self.task_id}"
        return f"{self.job_id}_*" if self.whole_array else str(self.job_id)


@dataclass(frozen=True)
class Term:
    kind: str
    refs: tuple[Ref, ...] = ()

    @property
    def job_ids(self) -> tuple[int, ...]:
        """The job (or array) ids the term names, in order."""
        return tuple(ref.job_id for ref in self.refs)


@dataclass(frozen=True)
class Dependency:
    terms: tuple[Term, ...]
    any_of: bool  #: True for '?' (OR), False for ',' (AND)

    @property
    def job_ids(self) -> set[int]:
        """Every job or array id named (for ``40_2``: 40)."""
        return {ref.job_id for term in self.terms for ref in term.refs}

    @property
    def singleton(self) -> bool:
        return any(term.kind == "singleton" for term in self.terms)

    @property
    def correlated(self) -> bool:
        """Whether an ``aftercorr`` term makes the verdict depend on the dependent job's task id."""
        return any(term.kind == "aftercorr" for term in self.terms)


@dataclass(frozen=True)
class ArrayState:
    """Which states the tasks of an array are in: each flag means at least one task is."""

    pending: bool = False
    running: bool = False
    completed: bool = False
    not_ok: bool = False  #: ended in a state other than COMPLETED (FAILED, CANCELLED, TIMEOUT...)


@dataclass(frozen=True)
class Facts:
    """What the database says about the referenced jobs, as dependencies need it."""

    jobs: Mapping[int, JobState] = field(default_factory=dict)  #: job id -> state
    arrays: Mapping[int, ArrayState] = field(default_factory=dict)  #: ids that name an array
    tasks: Mapping[tuple[int, int], JobState] = field(default_factory=dict)  #: (array id, task id) -> state


def parse(text: str) -> Dependency:
    """Parse a --dependency value; ValueError names what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    if "," in text and "?" in text:
        raise ValueError("use either ',' (all of) or '?' (any of), not both")
    any_of = "?" in text
    terms = tuple(_term(part) for part in text.split("?" if any_of else ","))
    return Dependency(terms, any_of)


def _term(part: str) -> Term:
    kind, _, rest = part.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"{kind!r} is not a dependency type ({', '.join(KINDS)})")
    if kind == "singleton":
        if rest:
            raise ValueError("singleton takes no job ids")
        return Term(kind)
    if not rest:
        raise ValueError(f"{part!r}: expected {kind}:JOBID[:JOBID...]")
    refs = tuple(_ref(piece, part, kind) for piece in rest.split(":"))
    if kind == "aftercorr" and any(ref.task_id is not None for ref in refs):
        raise ValueError(f"{part!r}: aftercorr names whole arrays (aftercorr:ARRAYID), not tasks")
    return Term(kind, refs)


def _ref(piece: str, part: str, kind: str) -> Ref:
    job, underscore, task = piece.partition("_")
    if not _digits(job) or int(job) < 1 or (underscore and task != "*" and not _digits(task)):
        raise ValueError(f"{part!r}: expected {kind}:JOBID[:JOBID...] (JOBID: 42, 40_2 or 40_*)")
    if not underscore:
        return Ref(int(job))
    return Ref(int(job), whole_array=True) if task == "*" else Ref(int(job), int(task))


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def needed_tasks(dependency: Dependency, task_id: int | None) -> set[tuple[int, int]]:
    """The (array id, task id) pairs whose states the verdict for a job with ``task_id`` needs."""
    needed = {(ref.job_id, ref.task_id) for term in dependency.terms for ref in term.refs if ref.task_id is not None}
    if task_id is not None:
        needed |= {(ref.job_id, task_id) for term in dependency.terms if term.kind == "aftercorr" for ref in term.refs}
    return needed


def evaluate(dependency: Dependency, facts: Facts, *, task_id: int | None = None,
             singleton_clear: bool = True) -> Verdict:
    """The verdict for the referenced jobs' current states (a missing job counts as never).

    ``task_id`` is the dependent job's own array task id (for ``aftercorr``).
    """
    verdicts = [_term_verdict(term, facts, task_id, singleton_clear) for term in dependency.terms]
    return _combine(verdicts, dependency.any_of)


def _combine(verdicts: list[Verdict], any_of: bool) -> Verdict:
    if any_of:
        if Verdict.MET in verdicts:
            return Verdict.MET
        return Verdict.NEVER if all(v is Verdict.NEVER for v in verdicts) else Verdict.WAIT
    if Verdict.NEVER in verdicts:
        return Verdict.NEVER
    return Verdict.MET if all(v is Verdict.MET for v in verdicts) else Verdict.WAIT


def _term_verdict(term: Term, facts: Facts, task_id: int | None, singleton_clear: bool) -> Verdict:
    if term.kind == "singleton":
        return Verdict.MET if singleton_clear else Verdict.WAIT
    return _combine([ref_verdict(term.kind, ref, facts, task_id) for ref in term.refs], any_of=False)


def ref_verdict(kind: str, ref: Ref, facts: Facts, task_id: int | None = None) -> Verdict:
    """The verdict of one ``kind:ref`` for a dependent job whose array task id is ``task_id``."""
    if kind == "aftercorr":
        counterpart = facts.tasks.get((ref.job_id, task_id)) if task_id is not None else None
        if counterpart is not None:
            return _job_verdict("afterok", counterpart)
        kind = "afterok"  # no counterpart: the whole of the other job or array must complete (Slurm)
    if ref.task_id is not None:
        return _job_verdict(kind, facts.tasks.get((ref.job_id, ref.task_id)))
    array = facts.arrays.get(ref.job_id)
    if array is not None:
        return _array_verdict(kind, array)
    return _job_verdict(kind, facts.jobs.get(ref.job_id))


def _job_verdict(kind: str, state: JobState | None) -> Verdict:
    if state is None:
        return Verdict.NEVER
    if kind == "after":
        return Verdict.MET if state is not JobState.PENDING else Verdict.WAIT
    if not state.is_terminal():
        return Verdict.WAIT
    if kind == "afterany":
        return Verdict.MET
    succeeded = state is JobState.COMPLETED
    return Verdict.MET if succeeded == (kind == "afterok") else Verdict.NEVER


def _array_verdict(kind: str, array: ArrayState) -> Verdict:
    """Slurm's test of a whole array: ``after`` once none is pending, the others once all ended."""
    if kind == "after":
        return Verdict.WAIT if array.pending else Verdict.MET
    if array.pending or array.running:
        return Verdict.WAIT
    if kind == "afterany":
        return Verdict.MET
    return Verdict.MET if array.not_ok == (kind == "afternotok") else Verdict.NEVER


def describe(dependency: Dependency, facts: Facts, *, task_id: int | None = None,
             singleton_clear: bool = True) -> str | None:
    """The dependency as Slurm shows it (scontrol's Dependency=, squeue's %E), or None once fulfilled.

    Each job named gets its own entry, its state in brackets: ``afterok:40_*(unfulfilled)``,
    ``afterok:41(failed)``; an array is written ``ID_*``.  Fulfilled entries are left out, and
    once the whole dependency is fulfilled nothing is left (Slurm clears it).
    """
    entries: list[tuple[str, Verdict]] = []
    for term in dependency.terms:
        if term.kind == "singleton":
            entries.append(("singleton", Verdict.MET if singleton_clear else Verdict.WAIT))
            continue
        for ref in term.refs:
            shown = Ref(ref.job_id, whole_array=True) if ref.job_id in facts.arrays and ref.task_id is None else ref
            entries.append((f"{term.kind}:{shown}", ref_verdict(term.kind, ref, facts, task_id)))
    if _combine([verdict for _, verdict in entries], dependency.any_of) is Verdict.MET:
        return None
    state = {Verdict.WAIT: "unfulfilled", Verdict.NEVER: "failed"}
    shown = [f"{text}({state[verdict]})" for text, verdict in entries if verdict is not Verdict.MET]
    return ("?" if dependency.any_of else ",").join(shown)


def first_missing(dependency: Dependency, facts: Facts) -> Ref | None:
    """The first job or task named that does not exist (refused at submit, as Slurm does)."""
    for term in dependency.terms:
        for ref in term.refs:
            if ref.task_id is not None:
                if (ref.job_id, ref.task_id) not in facts.tasks:
                    return ref
            elif ref.job_id not in facts.jobs:
                return ref
    return None
