"""Keeper retirement: the keeper of an idle worker node goes, so that Ray's autoscaler may stop the node.

Ray 2.60 counts a node that holds an actor as busy, even a 0-CPU one, so a keeper on every node
would keep every worker from ever being idle (``idle_timeout_minutes`` never expires).  The
scheduler therefore retires the keeper of a non-head node that has had nothing to do for
KEEPER_IDLE_TIMEOUT_S, and makes it again when a pending job could use that node.

This module keeps the books of that, and nothing else (it makes no Ray or database call): how
long each node with a keeper has been idle, which keepers are being retired (``retiring``: set
aside by the dispatcher, not yet ended), and which nodes rest without one (``retired``).  A node
in either set is neither met again by the node loop nor given jobs; only a retired one is woken.
"""

from __future__ import annotations

from typing import Collection, Iterable

from conductor.jobs import JobSpec
from conductor.resources import Node


class Retirement:
    """Idle time per node with a keeper, and the nodes whose keeper is being or was retired."""

    def __init__(self, idle_timeout_s: float) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._idle_since_s: dict[str, float] = {}  # ray node id -> monotonic time it last had work
        self._retiring: set[str] = set()
        self._retired: set[str] = set()

    def touch(self, node_ids: Iterable[str], now_s: float) -> None:
        """These nodes just had work (a job ended there): their idle time starts again."""
        for node_id in node_ids:
            self._idle_since_s[node_id] = now_s

    def due(self, keepers: Iterable[str], busy: Collection[str], now_s: float) -> list[str]:
        """The nodes among ``keepers`` that have not been ``busy`` for ``idle_timeout_s`` (the caller
        leaves out the head and checks again that nothing holds them before retiring any)."""
        keepers = set(keepers)
        for node_id in [n for n in self._idle_since_s if n not in keepers]:
            del self._idle_since_s[node_id]
        due = []
        for node_id in sorted(keepers):
            if node_id in busy:
                self._idle_since_s[node_id] = now_s
            elif now_s - self._idle_since_s.setdefault(node_id, now_s) >= self.idle_timeout_s:
                due.append(node_id)
        return due

    def retiring(self, node_id: str) -> None:
        """Its keeper is set aside: nothing is given to it while it is asked to end."""
        self._retiring.add(node_id)
        self._idle_since_s.pop(node_id, None)

    def retired(self, node_id: str) -> None:
        """Its keeper ended: the node rests until a pending job could use it."""
        self._retiring.discard(node_id)
        self._retired.add(node_id)

    def kept(self, node_id: str) -> None:
        """Its keeper held something after all (or did not answer): it is not retired."""
        self._retiring.discard(node_id)

    def wake(self, node_id: str) -> None:
        """A pending job could use it: its keeper is made again."""
        self._retired.discard(node_id)

    def resting(self, node_id: str) -> bool:
        """Whether the node has no keeper on purpose (retired, or being retired)."""
        return node_id in self._retired or node_id in self._retiring

    def retired_nodes(self) -> set[str]:
        return set(self._retired)

    def keep_only(self, alive: Collection[str]) -> None:
        """Forget nodes that left the cluster (the autoscaler stopped them, or they were lost)."""
        self._retired.intersection_update(alive)
        self._retiring.intersection_update(alive)
        for node_id in [n for n in self._idle_since_s if n not in alive]:
            del self._idle_since_s[node_id]


def wanted(nodes: Iterable[Node], pending: Iterable[JobSpec]) -> list[str]:
    """The nodes (of ``nodes``, those without a keeper) that one of the ``pending`` jobs could use:
    the node serves the job's partition and could hold the job's share of it when empty."""
    rest = {node.ray_node_id: node for node in nodes}
    found = []
    for spec in pending:
        for node_id, node in list(rest.items()):
            if node.serves(spec.partition) and spec.per_node.fits_in(node.capacity):
                found.append(node_id)
                del rest[node_id]
        if not rest:
            break
    return found
