"""ray-cluster.yaml passes Ray's own validation (the checks `ray up` runs)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "ray-cluster.yaml"


def _load() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_is_valid_for_ray_up() -> None:
    config = _load()
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["provider"]["type"] == "local"
    assert "~/.ray/auth_token" in config["file_mounts"]


def test_validation_would_catch_a_mistake() -> None:
    config = _load()
    config["not_a_ray_key"] = 1
    with pytest.raises(Exception, match="not_a_ray_key"):
        validate_config(prepare_config(config))


def test_every_host_is_labelled_with_its_partition() -> None:
    config = _load()
    for command in (config["head_start_ray_commands"][1], config["worker_start_ray_commands"][1]):
        assert '--labels="conductor.io/partition=$(head -n1 ~/conductor-partition' in command
