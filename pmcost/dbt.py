"""Running dbt as a subprocess, so users see dbt's own progress output unchanged: one
`dbt` command (run), or one dbt process for several commands (Session, what a refresh uses)."""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
from datetime import date
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from pmcost.dbt_worker import RESULTS_FD_VARIABLE
from pmcost.errors import PmcostError
from pmcost.server import EmbeddedServer
from pmcost.settings import Target, project_dir, state_dir
from pmcost.signals import POLL_SECONDS, STOP_GRACE_SECONDS, SignalGuard

# the level of dbt's file log (logs/dbt.log) unless $DBT_LOG_LEVEL_FILE names one
FILE_LOG_LEVEL = "info"

# Session settings of dbt's connections to the embedded server, through libpq's PGOPTIONS
# (dbt-postgres sets no `options` of its own unless a profile names a search_path). The server
# runs on this machine and dbt runs one thread per core, so during a build every core already
# has a query: a parallel plan only adds its workers' cost. At 100,000 tenants a daily refresh
# took 0.8 s less without them; at 10,000 no difference (DECISIONLOG, "dbt's queries on the
# embedded server run without parallel workers"). Settings of the operator's own PGOPTIONS
# come after these, so they win.
EMBEDDED_SESSION_OPTIONS = "-c max_parallel_workers_per_gather=0"


# the profile's output pmcost runs dbt with, whichever server (pmcost's --target): production
DBT_TARGET = "prod"
# what pmcost's dbt commands build: production's candidate, which `pmcost publish` switches in
BUILD_VARS = {"publish_stage": "candidate"}
# what the docs, MetricFlow's manifest and the report are parsed with: the relations readers query
PUBLISHED_VARS = {"publish_stage": "published"}


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
    # logs/dbt.log at info, what dbt prints: at debug (dbt's default) every statement and
    # event is written and flushed, about 0.5 s of a demo refresh's 7.5 s. An operator
    # chasing a statement sets DBT_LOG_LEVEL_FILE=debug, which is kept.
    env.setdefault("DBT_LOG_LEVEL_FILE", FILE_LOG_LEVEL)
    env["DBT_PROFILES_DIR"] = str(profiles_dir())
    env["PMCOST_TARGET"] = target.name
    if target.is_embedded:
        env.update(EmbeddedServer(state_dir()).require().dbt_env())
        options = env.get("PGOPTIONS", "")
        if EMBEDDED_SESSION_OPTIONS not in options:  # a process may apply this env twice
            env["PGOPTIONS"] = f"{EMBEDDED_SESSION_OPTIONS} {options}".strip()
    return env


def target_dir() -> Path:
    """Where dbt writes its artefacts: $DBT_TARGET_PATH (relative to the project), else target/."""
    configured = Path(os.environ.get("DBT_TARGET_PATH") or "target")
    return configured if configured.is_absolute() else project_dir() / configured


def dbt_vars(target: Target, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The --vars pmcost passes: the same from one day to the next (the app schema, and the
    candidate as the publish stage; the docs pass `published`), so dbt keeps its partial
    parsing; the day goes by day_environment()."""
    values = {"app_schema": target.app_schema, **BUILD_VARS}
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


# dbt_project.yml keys naming the folders whose files make up the project's code
CODE_PATH_KEYS = (
    "model-paths",
    "macro-paths",
    "seed-paths",
    "snapshot-paths",
    "test-paths",
    "analysis-paths",
)


def project_config() -> dict:
    """dbt_project.yml, parsed ({} when empty)."""
    return yaml.safe_load((project_dir() / "dbt_project.yml").read_text()) or {}


def code_fingerprint(server_version: int) -> str:
    """SHA-256 of everything a unit test's outcome depends on: dbt_project.yml and every file
    under the project's model, macro, seed, snapshot, test and analysis paths (names and
    contents), the dbt-core and dbt-postgres versions, and the PostgreSQL server version.
    Not the data: unit tests read only their fixtures."""
    project = project_dir()
    config_file = project / "dbt_project.yml"
    config = project_config()
    digest = hashlib.sha256()
    for package in ("dbt-core", "dbt-postgres"):
        digest.update(f"{package}=={metadata.version(package)}\n".encode())
    digest.update(f"server {server_version}\n".encode())
    files = {config_file}
    for key in CODE_PATH_KEYS:
        for folder in config.get(key) or []:
            files.update(path for path in (project / folder).rglob("*") if path.is_file())
    for path in sorted(files):
        digest.update(f"{path.relative_to(project).as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


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
    command = [dbt_executable(), *args, "--target", DBT_TARGET]
    if with_vars:
        command += ["--vars", json.dumps(dbt_vars(target, extra_vars))]
    env = dbt_environment(target) | day_environment(as_of, history_start)
    options = {"cwd": project_dir(), "env": env}
    if guard is not None:
        return guard.run(command, **options)
    return subprocess.run(command, check=False, **options).returncode  # type: ignore[call-overload]


def worker_request(
    target: Target,
    args: list[str],
    extra_vars: dict[str, str] | None = None,
    reuse: bool = False,
    results_to: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Session.run() as the dbt worker's request (pmcost.dbt_worker): the command with the
    target and --vars pmcost passes, the parse-reuse key (the --vars), the results file and
    the day's environment (day_environment) for the command."""
    command = [*args, "--target", DBT_TARGET, "--vars", json.dumps(dbt_vars(target, extra_vars))]
    return {
        "args": command,
        "reuse": command[-1] if reuse else None,
        "results_to": str(results_to) if results_to else None,
        "env": env or {},
    }


class Session:
    """One dbt process (pmcost.dbt_worker) for several dbt commands, under a SignalGuard.

    dbt is imported once, and commands run with `reuse=True` (source freshness, then the
    build: the same --vars) share one parse of the project. Output is dbt's own, as with
    run(); a signal stops the running command and the worker as it stops a dbt subprocess.
    """

    def __init__(
        self,
        target: Target,
        guard: SignalGuard,
        *,
        as_of: date | None = None,
        history_start: date | None = None,
    ) -> None:
        self.target = target
        self.guard = guard
        self.as_of = as_of
        self.day_env = day_environment(as_of, history_start)
        self.env = dbt_environment(target) | self.day_env
        self._child: subprocess.Popen[str] | None = None
        self._answers: int | None = None
        self._pending = ""
        self._used = False
        # what stopped dbt in the last command, if anything did (the worker's `error`)
        self.error: str | None = None

    def __enter__(self) -> Session:
        read_end, write_end = os.pipe()
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "pmcost.dbt_worker"],
                cwd=project_dir(),
                env=self.env | {RESULTS_FD_VARIABLE: str(write_end)},
                stdin=subprocess.PIPE,
                pass_fds=(write_end,),
                text=True,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self._answers = read_end
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        child = self._child
        if child is not None:
            if not self._used:
                child.kill()  # it ran nothing (the lock was busy, a date was refused)
            try:
                if child.stdin is not None:
                    child.stdin.close()  # end of input: the worker exits
            except OSError:
                pass
            try:
                child.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if self._answers is not None:
            os.close(self._answers)
            self._answers = None

    def run(
        self,
        args: list[str],
        *,
        extra_vars: dict[str, str] | None = None,
        reuse: bool = False,
        results_to: Path | None = None,
    ) -> int:
        """`dbt <args> --target <target> --vars ...` in the worker; returns dbt's exit code.

        With `results_to`, the command's results file is written there and manifest.json is
        not written (for a command whose manifest the next one writes again).
        """
        child = self._child
        if child is None or child.stdin is None:
            raise RuntimeError("Session.run() outside its with block")
        self.guard.check()
        self._used = True
        self.error = None
        try:
            request = worker_request(self.target, args, extra_vars, reuse, results_to, self.day_env)
            child.stdin.write(json.dumps(request) + "\n")
            child.stdin.flush()
        except BrokenPipeError as stopped:
            raise PmcostError(f"dbt stopped unexpectedly (exit {child.poll()})") from stopped
        return self.guard.supervise(child, self._answer)

    def set_history_start(self, history_start: date | None) -> None:
        """The history start of the commands that follow (a refresh decides it while dbt
        starts: pmcost.lookback); the macros read it when they run, so no parse is redone."""
        self.day_env = day_environment(self.as_of, history_start)
        self.env |= self.day_env

    def _answer(self) -> int | None:
        """The worker's exit code for the command, if it came within POLL_SECONDS."""
        assert self._answers is not None and self._child is not None
        ready, _, _ = select.select([self._answers], [], [], POLL_SECONDS)
        if not ready:
            return None
        chunk = os.read(self._answers, 4096).decode()
        if not chunk:  # the worker exited without answering (killed)
            code = self._child.wait()
            return code if code != 0 else 2
        self._pending += chunk
        if "\n" not in self._pending:
            return None
        line, self._pending = self._pending.split("\n", 1)
        answer = json.loads(line)
        self.error = answer.get("error")
        return int(answer["exit_code"])
