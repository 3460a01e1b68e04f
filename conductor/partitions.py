"""Partitions: named sets of nodes with their own limits, as Slurm's slurm.conf defines them.

Configured in app.properties, one key per partition, in slurm.conf's words::

    PARTITION_DEBUG=Nodes=ALL MaxTime=30:00 DefaultTime=10:00 MaxCPUsPerJob=4 PriorityJobFactor=10
    PARTITION_BATCH=Label=batch Default=YES DefaultTime=1:00:00 MaxTime=7-00:00:00
    PARTITION_GPU=Nodes=gpu1,gpu2 MaxTime=2-00:00:00

The partition's name is the key's suffix in lower case.  Its nodes are ``Nodes=ALL``, a
list of node names, or ``Label=VALUE``: the Ray nodes started with
``--labels conductor.io/partition=VALUE`` (the default, with VALUE the partition's name).
With no PARTITION_ key at all, partitions are open: any name is accepted, every node
serves every partition, and jobs that name none go to ``default``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from conductor import units
from conductor.resources import PARTITION_LABEL
#: The partition of a cluster that configures none.
IMPLICIT_NAME = "default"
_OPTIONS = ("nodes", "label", "default", "defaulttime", "maxtime", "maxcpusperjob", "maxnodes",
            "priorityjobfactor", "state")


@dataclass(frozen=True)
class Partition:
    """One partition's definition (slurm.conf's PartitionName line)."""

    name: str
    #: Node names; empty together with ``all_nodes`` False means "the nodes labelled ``label``".
    nodes: tuple[str, ...] = ()
    all_nodes: bool = False
    label: str = ""
    default: bool = False
    default_time_s: int | None = None  #: given to jobs that ask for no time limit
    max_time_s: int | None = None  #: None: unlimited
    max_cpus_per_job: int | None = None
    max_nodes: int | None = None
    priority_job_factor: int = 1
    state: str = "UP"  #: UP (jobs start) or DOWN (jobs are accepted and wait)

    def covers(self, node_name: str, labels: Mapping[str, str]) -> bool:
        """Whether the node (by name and Ray labels) belongs to this partition."""
        if self.all_nodes:
            return True
        if self.nodes:
            return node_name in self.nodes
        return labels.get(PARTITION_LABEL) == (self.label or self.name)

    def describe_nodes(self) -> str:
        if self.all_nodes:
            return "ALL"
        if self.nodes:
            return ",".join(self.nodes)
        return f"label {PARTITION_LABEL}={self.label or self.name}"


def lookup(partitions: Sequence[Partition], name: str) -> Partition | None:
    """The partition called ``name``; with none configured (open), one of every node by that name."""
    if not partitions:
        return Partition(name, all_nodes=True, default=name == IMPLICIT_NAME)
    return next((p for p in partitions if p.name == name), None)


def parse(name: str, text: str) -> Partition:
    """Parse one partition's ``Key=Value ...`` text; ValueError names the bad option and why."""
    name = name.strip().lower()
    if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
        raise ValueError(f"partition name {name!r} may hold only letters, digits, '-' and '_'")
    options: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if not sep or key.lower() not in _OPTIONS:
            raise ValueError(f"{word!r} is not one of {', '.join(_option_names())} as Key=Value")
        options[key.lower()] = value
    nodes = options.get("nodes", "")
    default_time_s, max_time_s = _time(options, "defaulttime", "DefaultTime"), _time(options, "maxtime", "MaxTime")
    if default_time_s and max_time_s and default_time_s > max_time_s:
        raise ValueError("DefaultTime is longer than MaxTime")
    return Partition(
        name=name,
        all_nodes=nodes.upper() == "ALL",
        nodes=tuple(n for n in nodes.split(",") if n) if nodes.upper() != "ALL" else (),
        label=options.get("label", ""),
        default=_yes_no(options.get("default", "NO"), "Default"),
        default_time_s=default_time_s,
        max_time_s=max_time_s,
        max_cpus_per_job=_count(options, "maxcpusperjob", "MaxCPUsPerJob"),
        max_nodes=_count(options, "maxnodes", "MaxNodes"),
        priority_job_factor=_factor(options),
        state=_state(options.get("state", "UP")),
    )


def check_set(partitions: Iterable[Partition]) -> tuple[Partition, ...]:
    """Validate a whole configuration: at most one default (the first one if none says so)."""
    found = tuple(sorted(partitions, key=lambda p: p.name))
    defaults = [p.name for p in found if p.default]
    if len(defaults) > 1:
        raise ValueError(f"more than one partition has Default=YES: {', '.join(defaults)}")
    return found


def default_of(partitions: Sequence[Partition]) -> Partition:
    """The partition of jobs that name none: the one with Default=YES, else the first by name."""
    if not partitions:
        return Partition(IMPLICIT_NAME, all_nodes=True, default=True)
    return next((p for p in partitions if p.default), partitions[0])


def memberships(partitions: Sequence[Partition], node_name: str,
                labels: Mapping[str, str]) -> frozenset[str] | None:
    """Names of the partitions a node belongs to; None when partitions are open (it serves all)."""
    if not partitions:
        return None
    return frozenset(p.name for p in partitions if p.covers(node_name, labels))


def _option_names() -> list[str]:
    return ["Nodes", "Label", "Default", "DefaultTime", "MaxTime", "MaxCPUsPerJob", "MaxNodes",
            "PriorityJobFactor", "State"]


def _yes_no(value: str, key: str) -> bool:
    if value.upper() in ("YES", "TRUE", "1"):
        return True
    if value.upper() in ("NO", "FALSE", "0"):
        return False
    raise ValueError(f"{key}={value!r} must be YES or NO")


def _time(options: Mapping[str, str], key: str, label: str) -> int | None:
    if key not in options:
        return None
    try:
        return units.parse_time_limit_s(options[key])
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None


def _count(options: Mapping[str, str], key: str, label: str, *, minimum: int = 1) -> int | None:
    if key not in options:
        return None
    value = options[key]
    if value.upper() in ("UNLIMITED", "INFINITE"):
        return None
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise ValueError(f"{label}={value!r} must be a whole number >= {minimum} or UNLIMITED")
    return int(value)


def _factor(options: Mapping[str, str]) -> int:
    if "priorityjobfactor" not in options:
        return 1
    return _count(options, "priorityjobfactor", "PriorityJobFactor", minimum=0) or 0


def _state(value: str) -> str:
    if value.upper() not in ("UP", "DOWN"):
        raise ValueError(f"State={value!r} must be UP or DOWN")
    return value.upper()
