"""sbatch's --dependency: parsing and evaluation.  Pure functions, no I/O.

Forms: ``after:ID[:ID...]`` (the jobs have started), ``afterany`` (ended), ``afterok``
(ended COMPLETED), ``afternotok`` (ended in any other state), ``singleton`` (no earlier job
of the same name and user is pending or running).  ``,`` joins with AND, ``?`` with OR;
one expression uses one of them (as Slurm).  A dependency that can no longer be met
(``afterok`` on a FAILED job) leaves the job PENDING with reason DependencyNeverSatisfied.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Mapping

from conductor.jobs import JobState

KINDS = ("after", "afterany", "afterok", "afternotok", "singleton")


class Verdict(str, Enum):
    """What a dependency says about a job now."""

    MET = "met"
    WAIT = "wait"
    NEVER = "never"


@dataclass(frozen=True)
class Term:
    kind: str
    job_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Dependency:
    terms: tuple[Term, ...]
    any_of: bool  #: True for '?' (OR), False for ',' (AND)

    @property
    def job_ids(self) -> set[int]:
        return {job_id for term in self.terms for job_id in term.job_ids}

    @property
    def singleton(self) -> bool:
        return any(term.kind == "singleton" for term in self.terms)


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
    ids = [piece for piece in rest.split(":")]
    if not rest or not all(piece.isascii() and piece.isdigit() for piece in ids):
        raise ValueError(f"{part!r}: expected {kind}:JOBID[:JOBID...]")
    return Term(kind, tuple(int(piece) for piece in ids))


def evaluate(dependency: Dependency, states: Mapping[int, JobState], *, singleton_clear: bool = True) -> Verdict:
    """The verdict for the referenced jobs' current states (a missing id counts as never)."""
    verdicts = [_term_verdict(term, states, singleton_clear) for term in dependency.terms]
    if dependency.any_of:
        if Verdict.MET in verdicts:
            return Verdict.MET
        return Verdict.NEVER if all(v is Verdict.NEVER for v in verdicts) else Verdict.WAIT
    if Verdict.NEVER in verdicts:
        return Verdict.NEVER
    return Verdict.MET if all(v is Verdict.MET for v in verdicts) else Verdict.WAIT


def _term_verdict(term: Term, states: Mapping[int, JobState], singleton_clear: bool) -> Verdict:
    if term.kind == "singleton":
        return Verdict.MET if singleton_clear else Verdict.WAIT
    verdicts = {_one(term.kind, states.get(job_id)) for job_id in term.job_ids}
    if Verdict.NEVER in verdicts:
        return Verdict.NEVER
    return Verdict.WAIT if Verdict.WAIT in verdicts else Verdict.MET


def _one(kind: str, state: JobState | None) -> Verdict:
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
