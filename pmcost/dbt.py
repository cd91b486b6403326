"""Running dbt as a subprocess, so users see dbt's own progress output unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from pmcost.errors import PmcostError
from pmcost.server import EmbeddedServer
from pmcost.settings import Target, project_dir, state_dir
from pmcost.signals import SignalGuard


def profiles_dir() -> Path:
    """$DBT_PROFILES_DIR, else the repo's own profiles.yml, else a copy of profiles.example.yml."""
    configured = os.environ.get("DBT_PROFILES_DIR")
    if configured:
        return Path(configured)
    project = project_dir()
    if (project / "profiles.yml").is_file():
        return project
    generated = state_dir() / "profiles"
    generated.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project / "profiles.example.yml", generated / "profiles.yml")
    return generated


def dbt_environment(target: Target) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env["DBT_PROFILES_DIR"] = str(profiles_dir())
    env["PMCOST_TARGET"] = target.name
    if target.is_embedded:
        env.update(EmbeddedServer(state_dir()).require().dbt_env())
    return env


def target_dir() -> Path:
    """Where dbt writes its artefacts: $DBT_TARGET_PATH (relative to the project), else target/."""
    configured = Path(os.environ.get("DBT_TARGET_PATH") or "target")
    return configured if configured.is_absolute() else project_dir() / configured


def dbt_vars(target: Target, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The --vars pmcost passes: the same from one day to the next (the app schema and, for
    the docs, the publish stage), so dbt keeps its partial parsing; the day goes by
    day_environment()."""
    values = {"app_schema": target.app_schema}
    values.update(extra or {})
    return values


def day_environment(as_of: date | None, history_start: date | None = None) -> dict[str, str]:
    """The as-of date and history start for the project's run_setting() macro: environment
    variables the macros read only while executing, so a new day does not make dbt re-parse
    the project (a changed --vars value would). Empty means unset: today, the lookback."""
    return {
        "PMCOST_AS_OF_DATE": as_of.isoformat() if as_of else "",
        "PMCOST_HISTORY_START": history_start.isoformat() if history_start else "",
    }


def dbt_executable() -> str:
    beside = Path(sys.executable).with_name("dbt")
    if beside.is_file():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise PmcostError("dbt is not installed in this environment; run `make build` first")
    return found


def run(
    args: list[str],
    target: Target,
    *,
    as_of: date | None = None,
    history_start: date | None = None,
    with_vars: bool = True,
    extra_vars: dict[str, str] | None = None,
    guard: SignalGuard | None = None,
) -> int:
    """Run `dbt <args> --target <target>` in the project folder; returns dbt's exit code.

    The password reaches dbt through the environment, never its arguments. With a guard,
    SIGTERM/SIGINT stop dbt and wait for it before pmcost exits (see pmcost.signals).
    """
    command = [dbt_executable(), *args, "--target", target.name]
    if with_vars:
        command += ["--vars", json.dumps(dbt_vars(target, extra_vars))]
    env = dbt_environment(target) | day_environment(as_of, history_start)
    options = {"cwd": project_dir(), "env": env}
    if guard is not None:
        return guard.run(command, **options)
    return subprocess.run(command, check=False, **options).returncode  # type: ignore[call-overload]
