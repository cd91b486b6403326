"""The refresh's dbt worker runs dbt as pip installed it: through dbtRunner, with nothing of
dbt, its adapters or psycopg2 replaced."""

from __future__ import annotations

import importlib
import io
import json
import os
import pkgutil
import sys
from datetime import date
from pathlib import Path

import pytest

import pmcost
from pmcost import dbt_worker
from pmcost.dbt import day_environment

from .conftest import BUILD_VARS, PROJECT, Database

WATCHED = ("dbt", "dbt_common", "dbt_semantic_interfaces", "psycopg2")
VENV = Path(sys.prefix).resolve()


def _ours(value: object) -> bool:
    """A function written in this project (not dbt's, nor code that dbt's serialisation
    library, mashumaro, compiles into its classes on first use)."""
    code = getattr(getattr(value, "__func__", value), "__code__", None)
    if code is None:
        return False
    path = Path(code.co_filename)
    if not path.is_absolute():
        return False
    path = path.resolve()  # a checkout whose .venv is a link to another one's
    return PROJECT in path.parents and VENV not in path.parents


def _classes_and_functions() -> dict[str, object]:
    """Every attribute of every class and module of dbt, its adapters and psycopg2 that is
    loaded now, by qualified name."""
    seen: dict[str, object] = {}
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in WATCHED:
            continue
        for attribute, value in list(vars(module).items()):
            seen[f"{name}.{attribute}"] = value
            if isinstance(value, type) and value.__module__ == name:
                for member, member_value in list(vars(value).items()):
                    seen[f"{name}.{attribute}.{member}"] = member_value
    return seen


def test_the_worker_and_the_package_leave_dbt_as_installed(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dbt's modules as a refresh loads them, before the comparison
    importlib.import_module("dbt.adapters.postgres.impl")
    importlib.import_module("dbt.cli.main")
    importlib.import_module("dbt.task.build")
    importlib.import_module("psycopg2.extensions")

    before = _classes_and_functions()
    for module in pkgutil.iter_modules(pmcost.__path__):
        if module.name not in ("dagster_defs",):  # the optional scheduler, checked elsewhere
            importlib.import_module(f"pmcost.{module.name}")
    # one command through the worker's own loop, in this process
    read_fd, write_fd = os.pipe()
    request = {"args": ["ls", "--target", "prod", "--vars", json.dumps(BUILD_VARS)]}
    monkeypatch.setenv(dbt_worker.RESULTS_FD_VARIABLE, str(write_fd))
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(request | {"reuse": "k"}) + "\n"))
    for name, value in (database.env() | day_environment(date(2026, 11, 20))).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(PROJECT)
    assert dbt_worker.serve() == 0
    with os.fdopen(read_fd) as answers:
        assert json.loads(answers.readline()) == {"exit_code": 0, "error": None}
    after = _classes_and_functions()
    replaced = sorted(
        name for name, value in after.items() if before.get(name) is not value and _ours(value)
    )
    assert not replaced, replaced


def test_a_commands_parse_keeps_only_the_options_that_shape_it() -> None:
    args = ["build", "--select", "a+", "--target", "prod", "--vars", "{}", "--full-refresh"]
    assert dbt_worker.parse_args(args) == [
        "parse",
        "--no-write-json",
        "--target",
        "prod",
        "--vars",
        "{}",
    ]


def test_what_stopped_dbt_is_one_line_without_its_heading() -> None:
    """The worker's `error`: a hook's problems, as pmcost repeats them in its own error."""
    from dbt_common.exceptions import CompilationError

    stopped = CompilationError(
        "The sources are not ready:\n    - source table public.plans is missing: load it\n"
        "    - source column public.payments.paid_at is missing\n\n"
        "    > in macro assert_sources_ready (macros/assert_sources_ready.sql)\n"
        "    > called by operation pmcost-on-run-start-1 (./dbt_project.yml)"
    )
    text = dbt_worker.error_text(stopped)
    assert text == (
        "The sources are not ready: source table public.plans is missing: load it; "
        "source column public.payments.paid_at is missing"
    )
    assert dbt_worker.error_text(None) is None
    assert dbt_worker.error_text(KeyboardInterrupt()) is None


def test_exit_codes_are_the_dbt_commands() -> None:
    assert dbt_worker.exit_code(True, None) == 0
    assert dbt_worker.exit_code(False, None) == 1
    assert dbt_worker.exit_code(False, RuntimeError("no profile")) == 2
    assert dbt_worker.exit_code(False, KeyboardInterrupt()) == 130
