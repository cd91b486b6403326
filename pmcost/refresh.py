"""The scheduled refresh: source freshness, pre-hook, `dbt build` into the candidate, publish,
docs; one at a time.

Write-audit-publish: the build writes every published model into the candidate schema and
tests it there; `pmcost.publish` switches it in only when everything passed and the guards
hold. Whatever happens (a failed test, a guard, a signal, a kill), the published tables are
either all old or all new. Each run leaves a JSON summary for schedulers and monitoring in
`target/refresh/` (`last.json`, and one file per run).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from pmcost import alerts, db, ddl, lookback, publish, report, seeds
from pmcost import dbt as dbt_runner
from pmcost.errors import PmcostError, UsageError
from pmcost.settings import Target
from pmcost.signals import SignalGuard

# the code fingerprint whose unit tests last passed, per target (pmcost.dbt.code_fingerprint)
UNIT_TESTED_FILE = "unit_tested.json"
# what a build adds when unit_tests_to_run leaves the unit tests out
WITHOUT_UNIT_TESTS = ("--exclude-resource-type", "unit_test")
# production's state for slim CI, under the target folder (keep_production_state)
PRODUCTION_STATE = "production"
REFRESH_LOCK = (1886221, 2)  # (pmcost, refresh); see pmcost.ddl.ADVISORY_LOCK
EXIT_CODES = {
    0: "published: every model and test passed, the guards held, the new tables are live",
    1: "failed or refused (a model, a test, a guard, the pre-hook): nothing was published",
    2: "bad usage (e.g. an as-of date after tomorrow or before the data begins)",
    5: "published, but the anomaly alerts could not be delivered to PMCOST_ALERT_WEBHOOK "
    "(the next refresh sends them)",
    6: "published, but the docs site or the executive report could not be written "
    "(`pmcost docs`, `pmcost report` write them again)",
    75: "another refresh is running: retry later, or pass --wait SECONDS",
    130: "interrupted by SIGINT: dbt was stopped; nothing was published (unless the message "
    "says the switch had already begun: it then completed, never half done)",
    143: "terminated by SIGTERM: as for 130",
}


@dataclass
class Summary:
    """What a refresh did, written as JSON for the scheduler and for monitoring."""

    started_at: str
    as_of_date: str
    history_start: str | None
    target: str
    outcome: str = "running"
    exit_code: int | None = None
    message: str = ""
    ended_at: str | None = None
    duration_seconds: float | None = None
    steps: dict[str, float] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    tests: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    guards: dict[str, object] = field(default_factory=dict)
    freshness: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, object] = field(default_factory=dict)
    reports: list[dict[str, str]] = field(default_factory=list)  # the reports written
    unit_tests: str = "not run"
    invocation_id: str | None = None
    run_results: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def _step(summary: Summary, name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        summary.steps[name] = round(time.monotonic() - started, 3)


# the application's dated columns, from the cheapest to read: the first day any of them
# describes is the first day a refresh can describe
DATED_COLUMNS = (
    ("companies", "created_at"),
    ("subscriptions", "current_period_start"),
    ("subscriptions", "created_at"),
    ("vps_instances", "created_at"),
    ("smtp_ip_addresses", "created_at"),
    ("payments", "billing_period_start"),
    ("payments", "paid_at"),
    ("billing_analytics", "period_start"),
)


def _dated(app_schema: str, table: str, column: str) -> sql.Composed:
    return sql.SQL("select {}::date as day from {}.{}").format(
        sql.Identifier(column), sql.Identifier(app_schema), sql.Identifier(table)
    )


def described(conn: psycopg.Connection, app_schema: str, day: date) -> bool:
    """Whether the application's data describes `day` or an earlier one: a row of any table
    dated on or before it (each check stops at the first such row)."""
    for table, column in DATED_COLUMNS:
        row = conn.execute(
            sql.SQL("select exists (select from ({}) as dated where day <= %s)").format(
                _dated(app_schema, table, column)
            ),
            (day,),
        ).fetchone()
        if row is not None and row[0]:
            return True
    return False


def first_data_day(conn: psycopg.Connection, app_schema: str) -> date | None:
    """The first day the application's data describes: the earliest date in any of its
    dated columns (a company loaded with created_at set to the load time does not hide the
    months of subscriptions, payments and usage before it)."""
    row = conn.execute(
        sql.SQL("select min(day) from ({}) as dated").format(
            sql.SQL(" union all ").join(
                sql.SQL("select min(day) as day from ({}) as one").format(
                    _dated(app_schema, table, column)
                )
                for table, column in DATED_COLUMNS
            )
        )
    ).fetchone()
    return None if row is None else row[0]


def check_dates(
    conn: psycopg.Connection, target: Target, as_of: date, history_start: date | None
) -> None:
    """Refuse (exit 2, before anything is written) a day no data can describe."""
    tomorrow = date.today() + timedelta(days=1)
    if as_of > tomorrow:
        raise UsageError(
            f"--as-of {as_of} is after tomorrow ({tomorrow}): no data describes it; "
            "use today or an earlier day"
        )
    if history_start is not None and history_start > as_of:
        raise UsageError("--history-start is after the as-of date; nothing to backfill")
    for label, day in (("--as-of", as_of), ("--history-start", history_start)):
        if day is None:
            continue
        try:
            if described(conn, target.app_schema, day):
                continue
            first = first_data_day(conn, target.app_schema)
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            return  # dbt's source check names the missing table or column
        if first is not None:
            raise UsageError(
                f"{label} {day} is before the first day the data describes ({first}, the "
                f"earliest date in {target.app_schema}'s companies, subscriptions, VPS, IPs, "
                f"payments and usage rows); use {first} or later"
            )


def lookback_days() -> int:
    """var daily_lookback_days of dbt_project.yml: the days a daily run recomputes."""
    try:
        return int(dbt_runner.project_config().get("vars", {}).get("daily_lookback_days", 3))
    except (OSError, ValueError, TypeError, yaml.YAMLError):
        return 3


def plan_days(
    conn: psycopg.Connection,
    as_of: date,
    history_start: date | None,
    *,
    full_refresh: bool,
    rewind_marts: bool,
    say: ddl.Say,
) -> tuple[date, date | None]:
    """The run's as-of date and history start, as the operator's flags mean them.

    - An as-of date before the published one is a backfill: it rewrites the history from
      that day's lookback (or --history-start) up to the published day, and the marts stay
      at the published day, where the dashboards' queries look (unless --rewind-marts).
    - A full refresh rebuilds the history from its first published day (unless
      --history-start says otherwise; the publish's guard refuses a shorter history).
    """
    schema = published_schema()
    latest = publish.last_published_as_of(conn, schema)
    if latest is not None and as_of < latest and not rewind_marts:
        start = history_start or as_of - timedelta(days=lookback_days())
        say(
            f"backfill: rewriting the history from {start} up to {latest}, the latest day "
            f"already published, where the marts stay (--rewind-marts publishes them as of "
            f"{as_of} instead)"
        )
        as_of, history_start = latest, start
    if full_refresh and history_start is None:
        first = publish.history_first_day(conn, schema)
        if first is not None and first < as_of:
            say(f"full refresh: rebuilding the history from its first published day, {first}")
            history_start = first
    return as_of, history_start


# The per-run records a folder keeps: every run of the last RUN_RECORD_DAYS days, and never
# fewer than the RUN_RECORDS_KEPT newest whatever their age (a daily schedule leaves one a day,
# about 40 KB each; without a limit they accumulate for as long as the deployment lives).
RUN_RECORD_DAYS = 90
RUN_RECORDS_KEPT = 100
# a run record's name: its UTC start, then its outcome (`<start>-<outcome>.json`)
RUN_RECORD_STAMP = "%Y-%m-%dT%H%M%SZ"


def write_summary(summary: Summary, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    started = datetime.fromisoformat(summary.started_at).astimezone(UTC)
    path = folder / f"{started.strftime(RUN_RECORD_STAMP)}-{summary.outcome}.json"
    text = json.dumps(asdict(summary), indent=2, default=str) + "\n"
    path.write_text(text)
    (folder / "last.json").write_text(text)
    prune_run_records(folder, started)
    return path


def prune_run_records(folder: Path, now: datetime) -> list[Path]:
    """Remove the per-run records (`<start>-<outcome>.json`) older than RUN_RECORD_DAYS,
    keeping the RUN_RECORDS_KEPT newest in any case; last.json and any other file stay."""
    records: list[tuple[datetime, Path]] = []
    for path in folder.glob("*-*.json"):
        try:
            started = datetime.strptime(path.name.rsplit("-", 1)[0], RUN_RECORD_STAMP)
        except ValueError:
            continue  # not a run record (its name does not start with a UTC start time)
        records.append((started.replace(tzinfo=UTC), path))
    records.sort(reverse=True)
    oldest_kept = now - timedelta(days=RUN_RECORD_DAYS)
    removed = [path for started, path in records[RUN_RECORDS_KEPT:] if started < oldest_kept]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def refresh(
    target: Target,
    *,
    as_of: date | None = None,
    history_start: date | None = None,
    full_refresh: bool = False,
    wait_seconds: float = 0.0,
    ddl_options: ddl.RunOptions | None = None,
    accept_changes: bool = False,
    rewind_marts: bool = False,
    skip_freshness: bool = False,
    all_unit_tests: bool = False,
    docs: bool = True,
    prepare: Callable[[dbt_runner.Session], None] | None = None,
    say: ddl.Say = print,
) -> Summary:
    """Raise PmcostError on any failure; return normally only when the run was published.

    `prepare` runs after the pre-hook and before the build, under the refresh's lock, with
    its dbt process (`pmcost build` writes and loads the demo's Finance files there).

    The advisory lock lives on a connection held open (idle, outside any transaction) for the
    whole run, so a second refresh against the same database waits or exits clearly, and a
    killed refresh releases it with its connection. A signal stops dbt and waits for it while
    the lock is still held.
    """
    day = as_of or date.today()
    summary = Summary(
        started_at=_now(),
        as_of_date=day.isoformat(),
        history_start=history_start.isoformat() if history_start else None,
        target=target.name,
    )
    artefacts = dbt_runner.target_dir()
    started = time.monotonic()
    try:
        with SignalGuard("dbt was stopped; nothing was published") as guard:
            _refresh(
                target,
                summary,
                guard,
                as_of=day,
                history_start=history_start,
                full_refresh=full_refresh,
                wait_seconds=wait_seconds,
                ddl_options=ddl_options,
                accept_changes=accept_changes,
                rewind_marts=rewind_marts,
                skip_freshness=skip_freshness,
                all_unit_tests=all_unit_tests,
                docs=docs,
                prepare=prepare,
                artefacts=artefacts,
                say=say,
            )
        summary.outcome, summary.exit_code = "published", 0
        return summary
    except BaseException as error:
        exit_code = getattr(error, "exit_code", 1)
        summary.exit_code = exit_code if isinstance(exit_code, int) else 1
        summary.outcome = {
            2: "usage",
            5: "published_alerts_failed",
            6: "published_outputs_failed",
            75: "busy",
            130: "interrupted",
            143: "interrupted",
        }.get(summary.exit_code, "guard" if isinstance(error, publish.GuardError) else "failed")
        summary.message = str(error)
        raise
    finally:
        summary.ended_at = _now()
        summary.duration_seconds = round(time.monotonic() - started, 3)
        write_summary(summary, artefacts / "refresh")


def _refresh(
    target: Target,
    summary: Summary,
    guard: SignalGuard,
    *,
    as_of: date,
    history_start: date | None,
    full_refresh: bool,
    wait_seconds: float,
    ddl_options: ddl.RunOptions | None,
    accept_changes: bool,
    rewind_marts: bool,
    skip_freshness: bool,
    all_unit_tests: bool,
    docs: bool,
    prepare: Callable[[dbt_runner.Session], None] | None,
    artefacts: Path,
    say: ddl.Say,
) -> None:
    # Finance's files first: a bad row is named by file and line before anything runs
    seeds.check()
    alerts.check_settings()  # and a malformed alert setting, before anything is written
    with db.connection(target) as conn:
        check_dates(conn, target, as_of, history_start)
        with ExitStack() as held:
            held.enter_context(
                ddl.AdvisoryLock(conn, REFRESH_LOCK, "pmcost refresh", wait_seconds, say)
            )
            # the days, from what is published once no other refresh can publish (the
            # dates were checked above, before waiting for the lock)
            as_of, history_start = plan_days(
                conn,
                as_of,
                history_start,
                full_refresh=full_refresh,
                rewind_marts=rewind_marts,
                say=say,
            )
            summary.as_of_date = as_of.isoformat()
            summary.history_start = history_start.isoformat() if history_start else None
            # the executive report's fixed costs (MetricFlow's import, the chart renderer), on
            # the core that is idle while dbt starts in its own process
            warming = threading.Thread(target=report.warm_up, name="report-warm-up", daemon=True)
            if docs:
                warming.start()
            # one dbt process for the refresh's dbt steps; it exits before the lock is let go
            session = held.enter_context(
                dbt_runner.Session(target, guard, as_of=as_of, history_start=history_start)
            )
            # the publish's row counts of the application tables, taken now on a connection
            # of their own while dbt starts (Python, one core)
            sources = SourceCount(target, publish.app_tables_of(artefacts))
            # a daily run (not a backfill, a full refresh or a rewind): what the late-arriving
            # feeds loaded since the last publish, read meanwhile too; it decides the days the
            # build recomputes (pmcost.lookback)
            arrivals = (
                lookback.ArrivalsReader(target, as_of, published_schema(), after=sources.counts)
                if history_start is None and not full_refresh and not rewind_marts
                else None
            )
            if skip_freshness:
                say("source freshness: skipped (--skip-freshness)")
            else:
                with _step(summary, "freshness"):
                    check_freshness(session, summary, artefacts=artefacts, say=say)
            guard.check()

            # the counts are done by now (they ran beside dbt's start); the pre-hook's DDL must
            # not queue behind them, holding the application's queries up behind it
            sources.counts()
            with _step(summary, "pre_hook"):
                apply_pre_hook(conn, target, ddl_options, say)
            guard.check()

            if prepare is not None:
                with _step(summary, "prepare"):
                    prepare(session)
                guard.check()

            # an empty application table stops the refresh here, before a build whose figures
            # the publish would refuse anyway (it checks every table again after the build)
            if not accept_changes:
                try:
                    refuse_empty_sources(conn, target)
                except publish.GuardError as refused:
                    summary.guards = refused.details
                    raise

            unit_tested = unit_tests_to_run(
                conn, artefacts, target, all_unit_tests=all_unit_tests, say=say
            )
            summary.unit_tests = (
                "ran"
                if unit_tested is not None
                else "skipped: the code is unchanged since they last passed"
            )
            with _step(summary, "build"):
                # the build's days (the feeds' loads read while dbt started, waited for here)
                recorded = _plan_history(session, summary, arrivals, as_of, say)
                build_started = time.time()
                build_args = ["build"] + (["--full-refresh"] if full_refresh else [])
                if unit_tested is None:
                    build_args += WITHOUT_UNIT_TESTS
                code = session.run(build_args, reuse=True)
            results = _keep_run_results(artefacts, summary, since=build_started)
            if code == 0 and unit_tested is not None:
                record_unit_tested(artefacts, target.name, unit_tested)
            if code != 0:
                failed = results.failures if results else []
                summary.failures = failed
                shown = "; ".join(failed[:5]) if failed else "see dbt's output above"
                raise PmcostError(
                    f"`dbt build` failed, nothing was published: {shown}; "
                    "the published tables are unchanged"
                )

            finished = (
                "the publish had begun and completed: the new tables are live, docs not generated"
            )
            with _step(summary, "publish"), guard.deferred(finished):
                try:
                    published = publish.publish(
                        conn,
                        artefacts,
                        accept_changes=accept_changes,
                        rewind_marts=rewind_marts,
                        sources=sources.counts(),
                        loaded_through=recorded,
                        say=say,
                    )
                except publish.GuardError as refused:
                    summary.guards = refused.details
                    raise
                summary.guards = published.guard_report()
                summary.tables = dict(published.figures.rows)  # the candidate's rows, now live

            with _step(summary, "alerts"):
                sent = alerts.send(conn, published_schema(), say)
                summary.alerts = asdict(sent) | {"failed": sent.failed}
            # what readers get beside the tables: the docs site, the day's executive report
            # (and the week's, the month's) with the site as one file beside it. Published
            # already: a failure here is reported (exit 6), never undone.
            problems: list[str] = []
            if docs:
                _swap_partial_parse(artefacts)
                written, problems = write_outputs(
                    lambda args: session.run(args, extra_vars=dbt_runner.PUBLISHED_VARS),
                    conn,
                    as_of,
                    artefacts,
                    say,
                    timed=lambda name: _step(summary, name),
                    warming=warming,
                    connect=lambda: db.connection(target),
                )
                _restore_run_results(artefacts)
                summary.reports += written
            if sent.failed:
                raise sent.failure()
            if problems:
                raise OutputsError("published, but " + "; ".join(problems))


def _plan_history(
    session: dbt_runner.Session,
    summary: Summary,
    arrivals: lookback.ArrivalsReader | None,
    as_of: date,
    say: ddl.Say,
) -> dict[str, str | None] | None:
    """history_from() for the arrivals read while dbt started, set for the build. Returns
    what to record with the publish (None when not read: a backfill, a full refresh, a
    rewind, an error)."""
    if arrivals is None:
        return None
    found = arrivals.arrivals()
    start = history_from(found, as_of, say)
    if start is not None:
        session.set_history_start(start)
        summary.history_start = start.isoformat()
    return None if found is None else found.loaded_through


def history_from(arrivals: lookback.Arrivals | None, as_of: date, say: ddl.Say) -> date | None:
    """A refresh step, shared with the Dagster job: a daily run's first day from what the
    feeds loaded since the last publish and the last published day (pmcost.lookback), said
    with its reason; None when it is the lookback's first day, which the build computes
    itself, as without pmcost."""
    days = lookback_days()
    planned = lookback.plan(as_of, days, arrivals)
    say(planned.said)
    if planned.warning:
        say(planned.warning)
    if planned.history_start > as_of - timedelta(days=days):
        return planned.history_start
    return None


class OutputsError(PmcostError):
    """Published, but the docs site or a report could not be written."""

    exit_code = 6


Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def write_reports(
    conn: psycopg.Connection,
    day: date,
    artefacts: Path,
    say: ddl.Say,
    connect: Connect | None = None,
) -> tuple[list[dict[str, str]], list[str]]:
    """The executive reports of the published day (report.editions_for): what was written,
    and the problems, if any.

    The day's report is written on `conn`. With `connect`, the week's and the month's (on a
    Monday, on the first of a month) are written at the same time, each on a connection of
    its own: they read the same published tables, which no publish can change while the
    refresh holds its lock, and most of a report's time is the server's (its queries) or
    vl-convert's, which do not need Python's lock. Without it they follow the day's. An
    edition that fails is named with its retry command; the others are still written."""
    root = report.report_root()
    editions = report.editions_for(day)

    def failed(period: str, why: str) -> str:
        return (
            f"the {period}'s executive report could not be written ({why}); "
            f"run `pmcost report --period {period} --as-of {day}` to retry"
        )

    def one(period: str, on: psycopg.Connection) -> dict[str, str] | str:
        try:
            done = report.write_report(
                on,
                manifest=artefacts / PRODUCTION_STATE / report.SEMANTIC_MANIFEST,
                schema=published_schema(),
                period=period,
                as_of=day,
                root=root,
            )
        except Exception as error:  # published already: any failure is reported, not raised
            return failed(period, str(error))
        say(f"report: {done.path} ({done.seconds:.1f} s)")
        return {"period": period, "path": str(done.path)}

    def on_own_connection(period: str, connect: Connect) -> dict[str, str] | str:
        try:
            with connect() as own:
                return one(period, own)
        except Exception as error:  # as in one(): reported, not raised
            return failed(period, f"no connection: {error}")

    if connect is None or len(editions) == 1:
        outcomes = [one(period, conn) for period in editions]
    else:
        with ThreadPoolExecutor(len(editions) - 1, thread_name_prefix="report") as pool:
            others = [pool.submit(on_own_connection, p, connect) for p in editions[1:]]
            outcomes = [one(editions[0], conn), *(future.result() for future in others)]
    written = [outcome for outcome in outcomes if isinstance(outcome, dict)]
    problems = [outcome for outcome in outcomes if isinstance(outcome, str)]
    return written, problems


DOCS_FAILED = "`dbt docs generate` failed (see dbt's output above); run `pmcost docs` to retry"


def write_outputs(
    run: Callable[[list[str]], int],
    conn: psycopg.Connection,
    day: date,
    artefacts: Path,
    say: ddl.Say,
    *,
    timed: Callable[[str], AbstractContextManager[None]] = lambda _: nullcontext(),
    warming: threading.Thread | None = None,
    connect: Connect | None = None,
) -> tuple[list[dict[str, str]], list[str]]:
    """What readers get beside the published tables, after a publish: the docs site, the
    day's executive report (and the week's, the month's) and the site as one file beside it.
    Returns what was written and the problems; published already, nothing here is undone.

    `run` runs a dbt command with the published vars and returns its exit code. First a
    parse: manifest.json and MetricFlow's semantic_manifest.json, which only a parse writes,
    name the published relations (`mf query` against production and the reports read them;
    kept as production's state). Then the site and catalog, without compiling every node
    again (the build just did; `pmcost docs` shows compiled SQL too). The reports need only
    that manifest and the published tables, so they are written on a thread of their own
    (`timed("report")`) while dbt writes the site in its process (`timed("docs")` covers the
    parse and the site); `warming`, the report's imports started earlier, is awaited first.
    `connect` opens a connection for each further edition of the day (write_reports).
    """
    (artefacts / "static_index.html").unlink(missing_ok=True)
    with timed("docs"):
        code = run(["parse"])
        if code == 0:
            keep_production_state(artefacts)
        outcome: dict[str, tuple[list[dict[str, str]], list[str]]] = {}

        def reports() -> None:
            with timed("report"):
                if warming is not None and warming.ident is not None:
                    warming.join()
                outcome["reports"] = write_reports(conn, day, artefacts, say, connect)

        writer = threading.Thread(target=reports, name="reports", daemon=True)
        writer.start()
        try:
            if code == 0:
                code = run(["docs", "generate", "--no-compile", "--static"])
        finally:
            writer.join()  # a stopped run still leaves whole reports, or none
    written, problems = outcome.get("reports", ([], ["the executive report failed; see above"]))
    if code != 0:
        problems = [DOCS_FAILED, *problems]
    folder = report.report_root() / day.isoformat()
    lineage = report.copy_lineage(artefacts / "static_index.html", folder)
    if lineage is not None:
        written.append({"period": "lineage", "path": str(lineage)})
        say(f"report: the docs site as one file, {lineage}")
    return written, problems


def generate_outputs(
    target: Target, conn: psycopg.Connection, day: date, artefacts: Path, say: ddl.Say
) -> tuple[list[dict[str, str]], list[str]]:
    """`write_outputs` for a run with no dbt process of its own (the Dagster job, after its
    publish): one dbt worker for its commands, as in a refresh, so dbt is imported once for
    the parse and the site (a process per command imported it twice, about 2 s of CPU)."""
    # no signal handlers here: the orchestrator owns them; the worker exits with its input
    with dbt_runner.Session(target, SignalGuard(), as_of=day) as session:
        return write_outputs(
            lambda args: session.run(args, extra_vars=dbt_runner.PUBLISHED_VARS),
            conn,
            day,
            artefacts,
            say,
            connect=lambda: db.connection(target),
        )


# -- the refresh's steps, shared with the Dagster job (pmcost/dagster_defs.py) --------------
def plan_run(
    conn: psycopg.Connection,
    target: Target,
    as_of: date,
    history_start: date | None,
    *,
    full_refresh: bool = False,
    rewind_marts: bool = False,
    say: ddl.Say,
) -> tuple[date, date | None]:
    """The run's days, under the refresh lock, for a caller that has not checked the dates
    (the Dagster job): check_dates, then plan_days (a past as-of is a backfill). `pmcost
    refresh` runs the two itself, the check before it waits for the lock."""
    check_dates(conn, target, as_of, history_start)
    return plan_days(
        conn,
        as_of,
        history_start,
        full_refresh=full_refresh,
        rewind_marts=rewind_marts,
        say=say,
    )


def apply_pre_hook(
    conn: psycopg.Connection, target: Target, options: ddl.RunOptions | None, say: ddl.Say
) -> None:
    """The column DDL on the application tables; stops the refresh unless it reached its
    target state."""
    say(f"pre-hook: column DDL on {target.app_schema} ({db.describe(conn.info.dsn)})")
    result = ddl.apply(conn, target.app_schema, options=options, say=say)
    for conflict in result.conflicts:
        say(f"  left alone: {conflict}")
    for failure in result.failures:
        say(f"  failed: {failure}")
    if not result.ok:
        raise PmcostError(
            "the pre-hook did not reach its target state: "
            + "; ".join([*result.failures, *result.conflicts])
            + "; fix it, then run `pmcost refresh` again (nothing was published)"
        )
    if not result.applied:
        say("  nothing to do: columns, constraints and indexes already in place")


def refuse_empty_sources(conn: psycopg.Connection, target: Target) -> None:
    """An empty application table stops the refresh before a build whose figures the
    publish would refuse anyway (it checks every table again after the build)."""
    empty = publish.empty_before_build(conn, published_schema(), target.app_schema)
    if empty:
        raise publish.GuardError(
            "refusing to build: "
            + "; ".join(empty)
            + ". The published tables are unchanged. If the table is empty on purpose, run "
            "again with --accept-changes (it is recorded with the run)",
            details={"breaches": empty, "accepted": False},
        )


class SourceCount:
    """Row counts of the application tables on a connection of its own, in a thread.

    The publish guards and records them (an empty table refuses the publish). Counting the
    largest table (billing_analytics, 10 million rows at 100,000 tenants) took 0.33 s of the
    publish step; at the start of a refresh one core is idle while dbt imports and loads the
    project, so the counts cost no time there. One process: no parallel workers beside dbt.
    The refresh waits for them before the pre-hook, whose DDL would otherwise wait for their
    share lock on a table, and the application's queries behind the DDL. Any error leaves the
    counts to the publish.
    """

    def __init__(self, target: Target, tables: list[str]) -> None:
        self._counts: dict[str, int] | None = None
        self._thread = threading.Thread(target=self._count, args=(target, tables), daemon=True)
        if tables:
            self._thread.start()

    def _count(self, target: Target, tables: list[str]) -> None:
        try:
            with db.connection(target) as conn:
                conn.execute("set max_parallel_workers_per_gather = 0")
                self._counts = publish.source_counts(conn, target.app_schema, tables)
        except Exception:  # whatever it was, the publish counts them itself
            self._counts = None

    def counts(self) -> dict[str, int] | None:
        """The counts, waiting for them if need be; None when there are none."""
        if self._thread.ident is not None:
            self._thread.join()
        return self._counts


def published_schema() -> str:
    """The schema readers query, as profiles.example.yml names it: $PMCOST_MARTS_SCHEMA, else
    analytics. (A profile of one's own that names another schema only loses the check before
    the build; the publish reads the schema from the build and guards it as always.)"""
    return os.environ.get("PMCOST_MARTS_SCHEMA") or "analytics"


def check_freshness(
    session: dbt_runner.Session, summary: Summary, *, artefacts: Path, say: ddl.Say
) -> None:
    """`dbt source freshness`, measured at the end of the as-of day
    (macros/overrides/collect_freshness.sql), then judge_freshness."""
    started = time.time()
    # its manifest.json would be written again by the build: only sources.json is written
    code = session.run(["source", "freshness"], reuse=True, results_to=artefacts / "sources.json")
    judge_freshness(
        code, artefacts, since=started, summary=summary, say=say, dbt_error=session.error
    )


def judge_freshness(
    code: int,
    artefacts: Path,
    *,
    since: float,
    summary: Summary | None,
    say: ddl.Say,
    dbt_error: str | None = None,
) -> None:
    """A refresh step, shared with the Dagster job: the sources.json that `dbt source
    freshness` (exit `code`) wrote into `artefacts` since `since`. A source past its
    warn_after is reported and the refresh goes on; past its error_after (or unreadable) it
    stops the refresh before anything is written. Each source's policy is in
    models/staging/*/_*__sources.yml and docs/publishing.md, "Freshness". `dbt_error`, what
    stopped dbt before it judged any source (the dbt worker's), is repeated in the error."""
    results = _freshness_results(artefacts, since=since)
    if summary is not None:
        summary.freshness = {name: status for name, status, _ in results}
    for name, status, detail in results:
        if status == "warn":
            say(f"source freshness: WARNING {name} {detail}; the refresh goes on")
    stopped = [(name, detail) for name, status, detail in results if status not in ("pass", "warn")]
    if code != 0 and not stopped:
        why = (
            f": {dbt_error}"
            if dbt_error
            else " (a missing source table or column is named in dbt's output above)"
        )
        raise PmcostError(
            f"`dbt source freshness` failed before judging any source{why}; nothing was "
            "built or published"
        )
    if stopped:
        shown = "; ".join(f"{name} {detail}" for name, detail in stopped)
        raise PmcostError(
            f"source freshness failed, nothing was built or published: {shown}; load the "
            "missing data and run again, or publish anyway with `pmcost refresh "
            "--skip-freshness` (the published tables are unchanged)"
        )


def _freshness_results(artefacts: Path, *, since: float) -> list[tuple[str, str, str]]:
    """(source.table, status, what to say) per source in the sources.json this run wrote."""
    path = artefacts / "sources.json"
    if not path.is_file() or path.stat().st_mtime < since - 1:
        return []
    found: list[tuple[str, str, str]] = []
    for result in json.loads(path.read_text()).get("results", []):
        name = ".".join(str(result.get("unique_id", "")).split(".")[2:])
        status = str(result.get("status", "error"))
        if status in ("runtime error", "error") and "max_loaded_at" not in result:
            found.append((name, status, f"could not be checked: {result.get('error', '?')}"))
            continue
        loaded = str(result.get("max_loaded_at", ""))
        criteria = result.get("criteria") or {}
        limit = criteria.get("error_after" if status == "error" else "warn_after") or {}
        threshold = f"{limit.get('count')} {limit.get('period')}s" if limit.get("count") else ""
        if loaded.startswith("1970-01-01"):
            detail = "has no rows"
        else:
            hours = float(result.get("max_loaded_at_time_ago_in_s", 0)) / 3600
            detail = f"was last loaded {hours:.1f} hours before the as-of moment ({loaded})"
        if status != "pass" and threshold:
            kind = "error" if status == "error" else "warn"
            detail += f", over its {kind} threshold of {threshold}"
        found.append((name, status, detail))
    return found


def docs_parse_state(artefacts: Path) -> Path:
    """Where a refresh keeps the docs step's partial-parse state (the published vars) between
    runs: dbt's own place in target/ holds the build's."""
    return artefacts / "refresh" / "docs_partial_parse.msgpack"


def _kept_from_build(artefacts: Path, name: str) -> Path:
    """Where a refresh keeps the build's copy of a dbt artefact (run_results.json,
    partial_parse.msgpack), which the docs step would overwrite."""
    return artefacts / "refresh" / f"build_{name}"


def _keep_run_results(
    artefacts: Path, summary: Summary, *, since: float
) -> publish.BuildReport | None:
    """Copy the build's run_results.json aside (the docs step overwrites it) and summarise it.
    None when this build wrote none (it stopped before running any node)."""
    source = artefacts / "run_results.json"
    if not source.is_file() or source.stat().st_mtime < since - 1:
        return None
    (artefacts / "refresh").mkdir(parents=True, exist_ok=True)
    for name in ("run_results.json", "partial_parse.msgpack"):
        if (artefacts / name).is_file():
            shutil.copyfile(artefacts / name, _kept_from_build(artefacts, name))
    report = publish.BuildReport.read(artefacts)
    summary.invocation_id = report.invocation_id
    summary.tests = report.tests()
    summary.run_results = str(source)
    return report


def _unit_tested(artefacts: Path) -> dict[str, str]:
    """Per target name, the code fingerprint the unit tests last passed with ({} if none)."""
    try:
        recorded = json.loads((artefacts / "refresh" / UNIT_TESTED_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _unit_tests_needed(artefacts: Path, target: Target, fingerprint: str) -> bool:
    """Unit tests read only their fixtures, so they give the same answer until the code
    changes: a refresh runs them when the code fingerprint differs from the one they last
    passed with on this target (or none is recorded)."""
    return _unit_tested(artefacts).get(target.name) != fingerprint


def unit_tests_to_run(
    conn: psycopg.Connection,
    artefacts: Path,
    target: Target,
    *,
    all_unit_tests: bool = False,
    say: ddl.Say = print,
) -> str | None:
    """Whether the run's build runs the unit tests: the code fingerprint to record once they
    pass (record_unit_tested), or None when the project's code, dbt and PostgreSQL are
    unchanged since they last passed on this target (the build then leaves them out).
    `pmcost refresh` and the Dagster job both decide it here."""
    fingerprint = dbt_runner.code_fingerprint(conn.info.server_version)
    if all_unit_tests or _unit_tests_needed(artefacts, target, fingerprint):
        return fingerprint
    say(
        "unit tests: skipped, the project's code, dbt and PostgreSQL are unchanged "
        "since they last passed (--all-unit-tests runs them anyway)"
    )
    return None


def record_unit_tested(artefacts: Path, target_name: str, fingerprint: str) -> None:
    """Record that the unit tests passed with this code fingerprint on this target."""
    recorded = _unit_tested(artefacts) | {target_name: fingerprint}
    path = artefacts / "refresh" / UNIT_TESTED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


def keep_production_state(artefacts: Path) -> None:
    """Keep the docs step's manifest, which names the published relations, as production's
    state for slim CI (`dbt build --select state:modified+ --defer --state
    target/production`): the next refresh replaces it, a failed one leaves it."""
    folder = artefacts / PRODUCTION_STATE
    folder.mkdir(parents=True, exist_ok=True)
    # and MetricFlow's manifest of the same relations, which the executive report compiles
    # its metrics from
    for name in ("manifest.json", report.SEMANTIC_MANIFEST):
        if (artefacts / name).is_file():
            shutil.copyfile(artefacts / name, folder / f"{name}.tmp")
            (folder / f"{name}.tmp").replace(folder / name)


def _swap_partial_parse(artefacts: Path) -> None:
    """Before the docs step: put the docs' own partial-parse state (kept from the last
    refresh) in place of the build's, so the docs' other vars (publish_stage) do not make dbt
    parse the whole project again each day."""
    kept = docs_parse_state(artefacts)
    current = artefacts / "partial_parse.msgpack"
    if kept.is_file():
        shutil.copyfile(kept, current)


def _restore_run_results(artefacts: Path) -> None:
    """Keep the docs' partial-parse state for the next refresh; put the build's
    run_results.json back in target/, where schedulers look for it, and the build's
    partial-parse state, so the next build skips parsing too."""
    docs_state = artefacts / "partial_parse.msgpack"
    if docs_state.is_file():
        kept = docs_parse_state(artefacts)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(docs_state, kept)
    for name in ("run_results.json", "partial_parse.msgpack"):
        kept = _kept_from_build(artefacts, name)
        if kept.is_file():
            shutil.copyfile(kept, artefacts / name)
