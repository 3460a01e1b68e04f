"""conductor.config: the app.properties format, environment overrides and error messages."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from conductor.config import Settings, load_settings, parse_properties
from conductor import partitions
from conductor.exceptions import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "app.properties"

#: Settings fields whose key in the file is not simply the upper-cased field name.
_FILE_KEY = {"total_memory_mb": "TOTAL_MEMORY", "default_mem_per_cpu_mb": "DEFAULT_MEM_PER_CPU",
             "priority_max_age_s": "PRIORITY_MAX_AGE", "priority_decay_half_life_s": "PRIORITY_DECAY_HALF_LIFE"}
_KEY_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "app.properties"
    path.write_text(text, encoding="utf-8")
    return path


# ---- the file format ---------------------------------------------------------------------


def test_key_value_lines_comment_lines_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "# a comment line\n\n   # an indented comment\nWORKER_CONCURRENCY=7\nAPI_PORT = 9001\n")
    settings = load_settings(path, environ={})
    assert settings.worker_concurrency == 7
    assert settings.api_port == 9001


def test_inline_comment_after_white_space_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "WORKER_CONCURRENCY=4  # 启动 4 个 Worker 进程\nNODE_NAME=n1\t# tab before it\n")
    settings = load_settings(path, environ={})
    assert settings.worker_concurrency == 4
    assert settings.node_name == "n1"


def test_hash_without_white_space_before_it_is_part_of_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "NODE_NAME=node#7\nREDIS_URL=redis://h:6379/0#frag  # comment\n")
    settings = load_settings(path, environ={})
    assert settings.node_name == "node#7"
    assert settings.redis_url == "redis://h:6379/0#frag"


def test_parse_properties_records_origin_file_and_line() -> None:
    values = parse_properties("# c\n\nworker_concurrency = 3 # x\nLOG_LEVEL=debug\n", source="f.properties")
    assert {key: (v.text, v.origin) for key, v in values.items()} == {
        "WORKER_CONCURRENCY": ("3", "f.properties:3"),
        "LOG_LEVEL": ("debug", "f.properties:4"),
    }


def test_line_without_equals_sign_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "# c\nWORKER_CONCURRENCY=2\ngarbage\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(info.value) == f"{path}:3: expected KEY=VALUE, got 'garbage'"


def test_unknown_key_in_file_is_an_error_naming_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "# c\nWORKER_CONCURRENCY=2\nWORKER_CONCURENCY=3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(info.value) == f"{path}:3: unknown key WORKER_CONCURENCY"


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "app.properties"
    with pytest.raises(ConfigError) as info:
        load_settings(missing, environ={})
    assert str(info.value) == f"configuration file {missing} does not exist"


def test_missing_config_file_named_by_conductor_config_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.properties"
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"CONDUCTOR_CONFIG": str(missing)})
    assert str(info.value) == f"configuration file {missing} does not exist"


def test_conductor_config_names_the_file_to_read(tmp_path: Path) -> None:
    path = write(tmp_path, "WORKER_CONCURRENCY=11\n")
    assert load_settings(environ={"CONDUCTOR_CONFIG": str(path)}).worker_concurrency == 11


# ---- environment overrides ---------------------------------------------------------------


def test_plain_environment_variable_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "WORKER_CONCURRENCY=2\n")
    assert load_settings(path, environ={"WORKER_CONCURRENCY": "5"}).worker_concurrency == 5


def test_prefixed_environment_variable_beats_plain_one_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "WORKER_CONCURRENCY=2\n")
    environ = {"WORKER_CONCURRENCY": "5", "CONDUCTOR_WORKER_CONCURRENCY": "6"}
    assert load_settings(path, environ=environ).worker_concurrency == 6


def test_file_value_used_when_environment_does_not_set_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "WORKER_CONCURRENCY=2\n")
    assert load_settings(path, environ={"API_PORT": "9000"}).worker_concurrency == 2


def test_empty_value_in_file_means_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, "WORKER_CONCURRENCY=\nTOTAL_CPUS=\nNODE_NAME=\nKILL_WAIT_S=  # default\n")
    settings = load_settings(path, environ={})
    assert settings.worker_concurrency == 4
    assert settings.total_cpus is None
    assert settings.node_name == socket.gethostname()
    assert settings.kill_wait_s == 30.0


def test_empty_value_in_environment_resets_a_file_value_to_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, "WORKER_CONCURRENCY=9\nTOTAL_CPUS=3\n")
    settings = load_settings(path, environ={"CONDUCTOR_WORKER_CONCURRENCY": "", "TOTAL_CPUS": ""})
    assert settings.worker_concurrency == 4
    assert settings.total_cpus is None


# ---- conversions ---------------------------------------------------------------------------


def test_total_memory_with_unit_becomes_megabytes(tmp_path: Path) -> None:
    path = write(tmp_path, "TOTAL_MEMORY=64G\nDEFAULT_MEM_PER_CPU=512M\n")
    settings = load_settings(path, environ={})
    assert settings.total_memory_mb == 65536
    assert settings.default_mem_per_cpu_mb == 512


def test_total_memory_from_environment_is_converted_too(tmp_path: Path) -> None:
    path = write(tmp_path, "TOTAL_MEMORY=64G\n")
    assert load_settings(path, environ={"CONDUCTOR_TOTAL_MEMORY": "2T"}).total_memory_mb == 2 * 1024 * 1024


def test_bad_memory_size_names_key_value_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "# c\nTOTAL_MEMORY=8X\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(info.value).startswith(f"{path}:2: TOTAL_MEMORY='8X' is invalid: '8X' is not a size")


def test_other_values_are_typed(tmp_path: Path) -> None:
    path = write(tmp_path, "WORKER_BURST=true\nKILL_WAIT_S=2.5\nLOG_LEVEL=debug\nSTATE_DIR=" + str(tmp_path / "s") + "\n")
    settings = load_settings(path, environ={})
    assert settings.worker_burst is True
    assert settings.kill_wait_s == 2.5
    assert settings.log_level == "DEBUG"
    assert settings.state_dir == (tmp_path / "s").resolve()


# ---- bad values ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "four"])
def test_bad_worker_concurrency_in_file_names_key_value_and_file_line(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"# workers\n\nWORKER_CONCURRENCY={value}  # comment\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(info.value).startswith(f"{path}:3: WORKER_CONCURRENCY={value!r} is invalid: ")


@pytest.mark.parametrize("name", ["CONDUCTOR_WORKER_CONCURRENCY", "WORKER_CONCURRENCY"])
@pytest.mark.parametrize("value", ["0", "-1", "four"])
def test_bad_worker_concurrency_in_environment_names_the_variable(tmp_path: Path, name: str, value: str) -> None:
    path = write(tmp_path, "WORKER_CONCURRENCY=2\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={name: value})
    assert str(info.value).startswith(f"environment variable {name}: WORKER_CONCURRENCY={value!r} is invalid: ")


def test_bad_log_level_gives_the_validator_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "LOG_LEVEL=LOUD\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(info.value) == f"{path}:1: LOG_LEVEL='LOUD' is invalid: must be one of DEBUG, INFO, WARNING, ERROR"


# ---- derived values ------------------------------------------------------------------------


def test_effective_database_url_defaults_to_sqlite_in_state_dir(tmp_path: Path) -> None:
    path = write(tmp_path, f"STATE_DIR={tmp_path / 'state'}\nDATABASE_URL=\n")
    settings = load_settings(path, environ={})
    assert settings.effective_database_url == f"sqlite:///{(tmp_path / 'state').resolve()}/conductor.db"


def test_effective_database_url_is_database_url_when_set(tmp_path: Path) -> None:
    path = write(tmp_path, "DATABASE_URL=postgresql+psycopg2://u:p@h:5432/c\n")
    assert load_settings(path, environ={}).effective_database_url == "postgresql+psycopg2://u:p@h:5432/c"


def test_default_state_dir_follows_xdg_state_home(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "LOG_LEVEL=INFO\n"), environ={"XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert settings.state_dir == (tmp_path / "xdg" / "conductor").resolve()
    assert settings.effective_database_url == f"sqlite:///{(tmp_path / 'xdg' / 'conductor').resolve()}/conductor.db"


def test_default_state_dir_follows_xdg_state_home_of_the_given_environ(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "process"))
    settings = load_settings(write(tmp_path, "LOG_LEVEL=INFO\n"), environ={"XDG_STATE_HOME": str(tmp_path / "given")})
    assert settings.state_dir == (tmp_path / "given" / "conductor").resolve()


def test_effective_api_url() -> None:
    assert Settings(api_host="0.0.0.0", api_port=8123).effective_api_url == "http://127.0.0.1:8123"
    assert Settings(api_host="10.0.0.5").effective_api_url == "http://10.0.0.5:8000"
    assert Settings(api_url="http://api.example:80/").effective_api_url == "http://api.example:80"


# ---- the shipped file ----------------------------------------------------------------------


def test_shipped_app_properties_loads_and_matches_the_defaults() -> None:
    settings = load_settings(SHIPPED, environ={})
    assert settings.worker_concurrency == 4
    assert settings.api_port == 8000
    assert settings.log_level == "INFO"
    assert settings == Settings()


def _file_key(field: str) -> str:
    return _FILE_KEY.get(field, field.upper())


def test_shipped_app_properties_documents_every_setting() -> None:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    keys = [m.group(1) for m in map(_KEY_LINE.match, lines) if m]
    missing = [field for field in Settings.model_fields if _file_key(field) not in keys and field != "partitions"]
    assert missing == []
    assert "# One key per partition: PARTITION_<NAME>=Key=Value" in SHIPPED.read_text(encoding="utf-8")


def test_every_key_of_shipped_app_properties_has_a_comment_above_it() -> None:
    """Each key sits under a comment line (several keys of one group may share it, e.g. API_HOST/API_PORT)."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    undocumented = []
    for field in (name for name in Settings.model_fields if name != "partitions"):  # documented as PARTITION_<NAME>
        key = _file_key(field)
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}="))
        above = index - 1
        while above >= 0 and _KEY_LINE.match(lines[above]):
            above -= 1
        if above < 0 or not lines[above].startswith("#") or not lines[above].lstrip("# ").strip():
            undocumented.append(key)
    assert undocumented == []


# ---- partitions ------------------------------------------------------------------------------


def test_partitions_come_from_partition_keys_in_slurm_conf_words(tmp_path: Path) -> None:
    path = write(tmp_path, "PARTITION_DEBUG=Nodes=ALL MaxTime=30:00 DefaultTime=10 MaxCPUsPerJob=4 PriorityJobFactor=10\n"
                           "PARTITION_BATCH=Label=cpu Default=YES\n")
    settings = load_settings(path, environ={"CONDUCTOR_PARTITION_GPU": "Nodes=g1,g2 State=DOWN"})
    by_name = {p.name: p for p in settings.partitions}
    assert sorted(by_name) == ["batch", "debug", "gpu"]
    debug, batch, gpu = by_name["debug"], by_name["batch"], by_name["gpu"]
    assert (debug.all_nodes, debug.max_time_s, debug.default_time_s, debug.max_cpus_per_job,
            debug.priority_job_factor, debug.default) == (True, 1800, 600, 4, 10, False)
    assert batch.default and batch.covers("n1", {"conductor.io/partition": "cpu"})
    assert not batch.covers("n1", {"conductor.io/partition": "batch"})
    assert (gpu.nodes, gpu.state) == (("g1", "g2"), "DOWN") and gpu.covers("g2", {}) and not gpu.covers("n1", {})


def test_without_partition_keys_partitions_are_open() -> None:
    configured = load_settings(None, environ={}).partitions
    assert configured == ()
    assert partitions.default_of(configured).name == "default"
    anything = partitions.lookup(configured, "compute-high-mem")
    assert anything is not None and anything.covers("any-node", {})
    assert partitions.memberships(configured, "any-node", {}) is None


def test_with_partition_keys_only_those_exist(tmp_path: Path) -> None:
    configured = load_settings(write(tmp_path, "PARTITION_B=Nodes=n2\nPARTITION_A=Nodes=n1\n"), environ={}).partitions
    assert partitions.lookup(configured, "c") is None
    assert partitions.default_of(configured).name == "a"  # none says Default=YES: the first by name
    assert partitions.memberships(configured, "n2", {}) == frozenset({"b"})


@pytest.mark.parametrize("text, words", [
    ("Nodes=ALL Colour=red", "'Colour=red' is not one of"),
    ("MaxTime=soon", "MaxTime: 'soon' is not a time limit"),
    ("MaxCPUsPerJob=0", "MaxCPUsPerJob='0' must be a whole number >= 1"),
    ("Default=maybe", "Default='maybe' must be YES or NO"),
    ("State=SLEEPY", "State='SLEEPY' must be UP or DOWN"),
    ("DefaultTime=2:00:00 MaxTime=1:00:00", "DefaultTime is longer than MaxTime"),
])
def test_a_bad_partition_names_the_key_the_option_and_why(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path, f"PARTITION_DEBUG={text}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "PARTITION_DEBUG" in str(caught.value) and words in str(caught.value)
    assert "app.properties:1" in str(caught.value)


def test_two_default_partitions_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "PARTITION_A=Nodes=ALL Default=YES\nPARTITION_B=Nodes=ALL Default=YES\n")
    with pytest.raises(ConfigError, match="more than one partition has Default=YES: a, b"):
        load_settings(path, environ={})
