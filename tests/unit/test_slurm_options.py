"""Slurm's size arithmetic (conductor/slurm_options.py), shared by sbatch's options and slurmrestd's job_desc_msg."""

from __future__ import annotations

import pytest

from conductor import slurm_options
from conductor.slurm_options import Layout, TaskCountMismatch


@pytest.mark.parametrize(("text", "nodes"), [("1", 1), ("2", 2), ("2-4", 2), (" 3 - 3 ", 3), ("1-15:4", 1)])
def test_minimum_nodes_is_the_low_end_of_the_range(text: str, nodes: int) -> None:
    assert slurm_options.minimum_nodes(text) == nodes


@pytest.mark.parametrize(("text", "message"), [
    ("many", "is not a node count"), ("", "is not a node count"), ("-2", "is not a node count"),
    ("2,4", "is not a node count"), ("0", "must be at least 1"), ("0-3", "must be at least 1"),
    ("3-2", "the maximum is below the minimum"),
])
def test_minimum_nodes_refuses_what_is_not_a_count(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        slurm_options.minimum_nodes(text)


@pytest.mark.parametrize(("given", "expected"), [
    ((None, None, None), Layout(nodes=1, tasks_per_node=1)),
    ((3, None, None), Layout(nodes=1, tasks_per_node=3)),      # -n 3: one node, three tasks on it
    ((8, 4, None), Layout(nodes=2, tasks_per_node=4)),         # -n 8 --ntasks-per-node 4: two nodes
    ((5, 2, None), Layout(nodes=3, tasks_per_node=2)),         # -n 5 --ntasks-per-node 2: rounded up to 3 nodes
    ((6, None, 2), Layout(nodes=2, tasks_per_node=3)),         # -n 6 -N 2: three per node
    ((7, None, 2), Layout(nodes=2, tasks_per_node=4)),         # -n 7 -N 2: rounded up to four per node
    ((None, 2, 3), Layout(nodes=3, tasks_per_node=2)),
    ((None, None, 4), Layout(nodes=4, tasks_per_node=1)),
    ((4, 2, 2), Layout(nodes=2, tasks_per_node=2)),            # all three, consistent
])
def test_layout_spreads_tasks_over_nodes_as_slurm_does(given: tuple, expected: Layout) -> None:
    assert slurm_options.layout(*given) == expected


def test_layout_refuses_three_counts_that_do_not_multiply_out() -> None:
    with pytest.raises(TaskCountMismatch) as caught:
        slurm_options.layout(5, 2, 2)
    assert (caught.value.tasks, caught.value.tasks_per_node, caught.value.nodes) == (5, 2, 2)
    assert str(caught.value) == "5 tasks is not 2 tasks per node x 2 nodes"


def test_layout_passes_counts_below_one_through_for_validation_to_refuse() -> None:
    assert slurm_options.layout(4, 0, None) == Layout(nodes=1, tasks_per_node=0)  # no division by zero
    assert slurm_options.layout(0, None, None) == Layout(nodes=1, tasks_per_node=0)
    assert slurm_options.layout(0, 2, None) == Layout(nodes=0, tasks_per_node=2)


@pytest.mark.parametrize(("gres", "gpus"), [
    ("gpu:2", 2), ("gpu:a100:1", 1), ("gpu:0", 0),
    ("mps:2", None), ("gpu", None), ("gpu:x", None), ("gpu:a100:big:2", None), ("fpga:1", None), ("", None),
])
def test_gpus_from_gres(gres: str, gpus: int | None) -> None:
    assert slurm_options.gpus_from_gres(gres) == gpus


def test_gpus_for_the_whole_job_are_divided_over_the_nodes() -> None:
    assert slurm_options.gpus_per_node(4, 2) == 2
    assert slurm_options.gpus_per_node(3, 1) == 3
    with pytest.raises(ValueError, match="3 GPUs cannot be spread evenly over 2 nodes"):
        slurm_options.gpus_per_node(3, 2)


def test_memory_per_cpu_counts_every_cpu_of_the_tasks_on_a_node() -> None:
    assert slurm_options.memory_per_node_mb(512, cpus_per_task=1, tasks_per_node=3) == 1536
    assert slurm_options.memory_per_node_mb(100, cpus_per_task=2, tasks_per_node=3) == 600
