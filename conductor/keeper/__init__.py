"""The keeper: one detached, named actor per node (``conductor-keeper-<node>``), like slurmd.

It owns its node's job tasks: it submits them (so Ray fate-shares them with the keeper, not with
the scheduler), holds how each ended until the scheduler has recorded it, and stops and signals
them through each attempt's control channel.  A scheduler that restarts finds its running jobs
here and adopts them (DESIGN.md invariant 7).

- ``protocol``: what the scheduler and a keeper exchange, and its version;
- ``actor``: the keeper itself;
- ``handle``: the keeper of a node, from the scheduler's side.
"""
