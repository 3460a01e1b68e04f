"""The layers point one way: a check over every module's imports (ast), not over behaviour.

    domain  <-  scheduling  <-  storage / queue  <-  service, scheduler actor  <-  api, cli (entry points)

``cluster/`` (reaching Ray from an entry point) sits beside api and cli; the executor imports only
the standard library, so it is the same code wherever a Ray worker runs it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The domain: values and pure rules, importing nothing but each other.
DOMAIN = {"conductor.jobs", "conductor.resources", "conductor.units", "conductor.arrays", "conductor.directives",
          "conductor.metrics", "conductor.logs",
          "conductor.dependencies", "conductor.exceptions", "conductor.signals", "conductor.slurm_options",
          "conductor.environment", "conductor.hostlist"}
#: Pure scheduling rules and the configuration they read.
SCHEDULING = {"conductor.policy", "conductor.priority", "conductor.partitions", "conductor.config",
              "conductor.properties"}


def modules(package: str) -> dict[str, set[str]]:
    """module name -> the modules it imports (absolute names; relative imports resolved)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module if not node.level else ".".join(name.split(".")[:-node.level] + [node.module])
                imported |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        found[name] = imported
    return found


def inside(imported: set[str]) -> set[str]:
    """conductor's own modules among ``imported`` (not the bare package of ``from conductor import x``)."""
    return {name for name in imported if name.startswith("conductor.")}


def roots(imported: set[str]) -> set[str]:
    return {name.split(".")[0] for name in imported}


CONDUCTOR = modules("conductor")


def test_the_core_imports_no_entry_point_and_no_web_or_cli_framework() -> None:
    for module, imported in CONDUCTOR.items():
        assert not roots(imported) & {"api", "cli", "cluster", "fastapi", "typer", "starlette", "uvicorn"}, module


def test_the_executor_imports_only_the_standard_library() -> None:
    executor = {m: i for m, i in CONDUCTOR.items() if m.startswith("conductor.executor")}
    assert executor, "no executor modules found"
    for module, imported in executor.items():
        outside = {name for name in imported if not name.startswith("conductor.executor")}
        assert roots(outside) <= set(sys.stdlib_module_names) | {"__future__"}, (module, outside)


@pytest.mark.parametrize("module", sorted(m for m in CONDUCTOR if m in DOMAIN))
def test_the_domain_imports_only_the_domain(module: str) -> None:
    assert {name for name in inside(CONDUCTOR[module]) if not any(name == d or name.startswith(d + ".")
                                                                 for d in DOMAIN)} == set()


@pytest.mark.parametrize("module", sorted(m for m in CONDUCTOR if m in SCHEDULING))
def test_scheduling_rules_import_no_storage_queue_service_or_scheduler(module: str) -> None:
    lower = DOMAIN | SCHEDULING
    assert {name for name in inside(CONDUCTOR[module]) if not any(name == d or name.startswith(d + ".")
                                                                 for d in lower)} == set()


def test_storage_and_queue_know_nothing_above_them() -> None:
    above = ("conductor.service", "conductor.scheduler", "conductor.auth", "conductor.eligibility")
    for module, imported in CONDUCTOR.items():
        if module.startswith("conductor.db") or module == "conductor.queue":
            assert not {name for name in imported if name.startswith(above)}, module


def test_only_entry_points_import_the_api_or_the_cli() -> None:
    """cli/daemon.py runs ``conductor up`` (it serves the API); nothing else crosses between the two."""
    for module, imported in {**modules("api"), **modules("cluster")}.items():
        assert "cli" not in roots(imported), module
    for module, imported in modules("cli").items():
        assert "api" not in roots(imported) or module == "cli.daemon", module


def test_api_routes_go_through_the_service_not_past_it() -> None:
    for path in sorted((ROOT / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("job_queue",):
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} reaches the queue past the service")
            if isinstance(node, ast.Attribute) and node.attr == "repository":
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} reaches the repository past the service")


def test_no_other_installed_distribution_owns_our_top_level_names() -> None:
    """api, cli and cluster are generic names: installed, they are safe only while nothing else claims them."""
    owners = importlib.metadata.packages_distributions()
    for name in ("conductor", "api", "cli", "cluster"):
        assert set(owners.get(name, [])) == {"conductor"}, (name, owners.get(name))
