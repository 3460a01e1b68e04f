"""conductor.priority: the multifactor priority and fair share."""

from __future__ import annotations

import pytest

from conductor.config import Settings
from conductor.partitions import Partition
from conductor.priority import FairShare, UsageRecord, Weights, compute, partition_factors

DAY_S = 86400.0


def weights(**overrides: int) -> Weights:
    values = dict(age=1000, fairshare=1000, job_size=100, partition=1000, max_age_s=7 * DAY_S, half_life_s=7 * DAY_S)
    values.update(overrides)
    return Weights(**values)


def test_weights_come_from_settings() -> None:
    w = Weights.of(Settings(priority_weight_age=5, priority_max_age_s=60))
    assert (w.age, w.fairshare, w.max_age_s) == (5, 1000, 60.0)


def test_priority_is_the_weighted_sum_minus_nice() -> None:
    f = compute(weights=weights(), waited_s=3.5 * DAY_S, fairshare=0.25, job_cpus=8, cluster_cpus=32,
                partition=0.5, nice=10, admin=0)
    assert (f.age, f.fairshare, f.job_size, f.partition) == (0.5, 0.25, 0.25, 0.5)
    assert f.priority == 500 + 250 + 25 + 500 - 10


def test_age_stops_growing_at_max_age_and_size_at_the_whole_cluster() -> None:
    f = compute(weights=weights(), waited_s=30 * DAY_S, fairshare=0, job_cpus=64, cluster_cpus=32, partition=0,
                nice=0, admin=0)
    assert (f.age, f.job_size, f.priority) == (1.0, 1.0, 1100)


def test_an_admin_set_priority_is_added_to_the_sum() -> None:
    f = compute(weights=weights(), waited_s=0, fairshare=1, job_cpus=0, cluster_cpus=32, partition=1, nice=2,
                admin=50)
    assert f.priority == 1000 + 1000 + 50 - 2 and f.admin == 50


def test_fair_share_favours_the_account_that_used_less() -> None:
    share = FairShare.of([UsageRecord("heavy", 9000, 0.0), UsageRecord("light", 1000, 0.0)], half_life_s=DAY_S)
    assert share.factor("heavy", 0.0) == pytest.approx(2 ** -(0.9 * 2))
    assert share.factor("light", 0.0) == pytest.approx(2 ** -(0.1 * 2))
    assert share.factor("new", 0.0) == 1.0
    assert share.factor("light", 0.0) > share.factor("heavy", 0.0)


def test_usage_halves_every_half_life() -> None:
    share = FairShare(half_life_s=100.0)
    share.add("a", 800.0, at_s=0.0)
    assert share.usage("a", 100.0) == pytest.approx(400.0)
    assert share.usage("a", 300.0) == pytest.approx(100.0)
    share.add("a", 50.0, at_s=-100.0)  # an older record counts for less
    assert share.usage("a", 0.0) == pytest.approx(825.0)


def test_no_usage_at_all_gives_everyone_one() -> None:
    assert FairShare(DAY_S).factor("anyone", 0.0) == 1.0


def test_partition_factor_is_relative_to_the_largest() -> None:
    assert partition_factors([Partition("a", priority_job_factor=10), Partition("b", priority_job_factor=5),
                              Partition("c", priority_job_factor=0)]) == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert partition_factors([Partition("a", priority_job_factor=0)]) == {"a": 0.0}
