"""The daily refresh as Dagster definitions (the optional extra: `pip install -e '.[dagster]'`).

    dagster dev -m pmcost.dagster_defs                         # UI, schedule, lineage
    dagster job execute -m pmcost.dagster_defs -j pmcost_daily_refresh

The job is `pmcost refresh` in Dagster's terms, one step per stage, each calling the same
step functions as `pmcost refresh` (pmcost.refresh), so their behaviour cannot drift:

1. `application_tables` (the pre-hook, first): checks Finance's seed files, takes the refresh
   lock, plans the run's days (`plan_run`: a past as-of is a backfill and the marts stay at
   the published day; `history_from`: a daily run recomputes the days late rows describe),
   runs `dbt source freshness` and judges it (`judge_freshness`: a
   stale feed fails the run), applies the column DDL (`apply_pre_hook`) and refuses an empty
   application table (`refuse_empty_sources`). Its assets are the application and Finance
   tables dbt reads, so every dbt model depends on it.
2. the dbt project (`dagster-dbt`): `dbt build` into the candidate schema for the planned
   days, with the unit tests when the code changed since they last passed
   (`unit_tests_to_run`); each dbt data test is an asset check of its model.
3. `published_marts`: the guards and the switch (`pmcost.publish`), on the session that
   holds the refresh lock, then the anomaly alerts (`pmcost.alerts`).
4. `executive_report` (last): the docs site for the published relations (and as one file)
   and the day's executive report, written while dbt writes the site (`generate_outputs`).

Retries honour exit 75 and nothing else: "another refresh or DDL run is in progress" (what
`pmcost refresh` exits 75 for) asks Dagster to retry the step later (RetryRequested, up to
$PMCOST_RETRY_ATTEMPTS times, every $PMCOST_RETRY_SECONDS); any other failure fails the run
at once, with nothing published. The job runs in one process so the lock's session lives for
the whole run, as it does in `pmcost refresh`. The target is $PMCOST_TARGET (embedded by
default), the as-of date the run tag `pmcost/as_of` (the schedule sets it; default today).
"""

import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
from dagster import AssetExecutionContext, InitResourceContext, ScheduleEvaluationContext
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from pmcost import alerts, db, ddl, demo_data, lookback, publish, seeds
from pmcost import dbt as dbt_runner
from pmcost.errors import BusyError, PmcostError
from pmcost.refresh import (
    REFRESH_LOCK,
    WITHOUT_UNIT_TESTS,
    apply_pre_hook,
    generate_outputs,
    history_from,
    judge_freshness,
    plan_run,
    published_schema,
    record_unit_tested,
    refuse_empty_sources,
    unit_tests_to_run,
)
from pmcost.settings import DEFAULT_APP_SCHEMA, DEFAULT_TARGET, Target, project_dir

AS_OF_TAG = "pmcost/as_of"
APP_TABLES = tuple(demo_data.APP_TABLES)  # the application's tables the pre-hook prepares
FINANCE_TABLES = ("invoice_lines", "ledger_entries")
PARSE_STATE = "partial_parse.msgpack"  # dbt's partial-parse state in a target folder


def _target() -> Target:
    return Target(
        name=os.environ.get("PMCOST_TARGET", DEFAULT_TARGET),
        app_schema=os.environ.get("PMCOST_APP_SCHEMA", DEFAULT_APP_SCHEMA),
    )


def _as_of(context: AssetExecutionContext) -> date:
    tagged = context.run.tags.get(AS_OF_TAG)
    return date.fromisoformat(tagged) if tagged else date.today()


def _retry(error: BusyError) -> dg.RetryRequested:
    return dg.RetryRequested(
        max_retries=int(os.environ.get("PMCOST_RETRY_ATTEMPTS", "12")),
        seconds_to_wait=float(os.environ.get("PMCOST_RETRY_SECONDS", "300")),
    )


def _definitions_folder() -> Path:
    return dbt_runner.target_dir() / "dagster"


def _manifest() -> Path:
    """dbt's manifest for the definitions: $PMCOST_DAGSTER_MANIFEST when a deploy step built
    it, else `dbt parse` now into target/dagster/ (a few seconds, no database needed)."""
    prebuilt = os.environ.get("PMCOST_DAGSTER_MANIFEST")
    if prebuilt:
        return Path(prebuilt)
    folder = _definitions_folder()
    code = dbt_runner.run(["parse", "--quiet", "--target-path", str(folder)], _target())
    if code != 0:
        raise RuntimeError("`dbt parse` failed (its output is above), so no Dagster definitions")
    return folder / "manifest.json"


class RefreshLock(dg.ConfigurableResource):
    """The refresh's advisory lock (pmcost.refresh.REFRESH_LOCK) on one session held open for
    the run: a `pmcost refresh` from cron and this job never build or publish at once."""

    def connection(self) -> psycopg.Connection:
        held = getattr(self, "_held", None)
        if held is None or held.closed:
            held = db.connect(db.conninfo_for(_target()))
            object.__setattr__(self, "_held", held)
        return held

    def acquire(self) -> None:
        """Take the lock (again, on a retry) or raise BusyError, as `pmcost refresh` does."""
        conn = self.connection()
        ddl.AdvisoryLock(conn, REFRESH_LOCK, "pmcost refresh", 0.0, lambda _m: None).acquire()

    def plan(self, as_of: date, say: ddl.Say) -> tuple[date, date | None]:
        """The run's days, as `pmcost refresh` plans them under the lock (a past as-of is a
        backfill; the marts stay at the published day; a daily run recomputes the days late
        rows describe), kept for the later steps with the feeds' loads the publish records."""
        conn = self.connection()
        planned = plan_run(conn, _target(), as_of, None, say=say)
        loaded: dict[str, str | None] | None = None
        if planned[1] is None:
            found = lookback.read_arrivals(
                conn, _target().app_schema, planned[0], published_schema()
            )
            planned = (planned[0], history_from(found, planned[0], say))
            loaded = None if found is None else found.loaded_through
        object.__setattr__(self, "_planned", planned)
        object.__setattr__(self, "_loaded_through", loaded)
        return planned

    def loaded_through(self) -> dict[str, str | None] | None:
        """What the feeds had loaded when the run was planned (None for a backfill)."""
        return getattr(self, "_loaded_through", None)

    def planned(self, context: AssetExecutionContext) -> tuple[date, date | None]:
        return getattr(self, "_planned", None) or (_as_of(context), None)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        held = getattr(self, "_held", None)
        if held is not None and not held.closed:
            held.close()  # releases the session-level lock


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["app", name], description=f"Application table {name}, pre-hook applied")
        for name in APP_TABLES
    ]
    + [
        dg.AssetSpec(["finance", name], description=f"Finance landing table {name}")
        for name in FINANCE_TABLES
    ],
    name="application_tables",
    description="The pre-hook: refresh lock, dbt source freshness, column DDL.",
)
def application_tables(
    context: AssetExecutionContext, dbt: DbtCliResource, refresh_lock: RefreshLock
) -> Iterator[dg.MaterializeResult]:
    target = _target()
    try:
        seeds.check()  # Finance's files, named by file and line
        alerts.check_settings()  # and the alert settings, before anything is written
    except PmcostError as bad:
        raise dg.Failure(str(bad)) from bad
    try:
        refresh_lock.acquire()
    except BusyError as busy:
        context.log.warning(f"{busy}: retrying later (exit 75 in `pmcost refresh`)")
        raise _retry(busy) from busy
    try:
        as_of, history_start = refresh_lock.plan(_as_of(context), say=context.log.info)
    except PmcostError as refused:
        raise dg.Failure(str(refused)) from refused
    os.environ.update(
        dbt_runner.dbt_environment(target) | dbt_runner.day_environment(as_of, history_start)
    )
    variables = json.dumps(dbt_runner.dbt_vars(target))
    started = time.time()
    folder = _run_folder(context)
    freshness = dbt.cli(
        ["source", "freshness", "--vars", variables], raise_on_error=False, target_path=folder
    )
    freshness.wait()
    # the refresh's own steps, as `pmcost refresh` runs them (pmcost.refresh)
    try:
        judge_freshness(
            0 if freshness.is_successful() else 1,
            folder,
            since=started,
            summary=None,
            say=context.log.warning,
        )
        with db.connection(target) as conn:
            apply_pre_hook(conn, target, None, context.log.info)
        refuse_empty_sources(refresh_lock.connection(), target)
    except BusyError as busy:
        raise _retry(busy) from busy
    except PmcostError as stopped:
        raise dg.Failure(str(stopped)) from stopped
    for name in APP_TABLES:
        yield dg.MaterializeResult(asset_key=["app", name], metadata={"as_of": str(as_of)})
    for name in FINANCE_TABLES:
        yield dg.MaterializeResult(asset_key=["finance", name])


def _run_folder(context: AssetExecutionContext) -> Path:
    """The run's dbt target folder: freshness, the build (the candidate's manifest and
    results, which the publish reads). It starts from the partial-parse state of the
    definitions' own `dbt parse` (same profile, target and --vars), so each command re-reads
    only the files that changed instead of parsing the whole project again (seconds each).
    dagster-dbt copies that state only from the project's target folder, which a host that
    runs no `pmcost refresh` never has."""
    folder = _definitions_folder() / context.run.run_id
    state, parsed = folder / PARSE_STATE, _definitions_folder() / PARSE_STATE
    if not state.is_file() and parsed.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(parsed, state)
    return folder


@dbt_assets(
    manifest=_manifest(),
    dagster_dbt_translator=DagsterDbtTranslator(),
    name="pmcost_dbt",
)
def pmcost_dbt(
    context: AssetExecutionContext, dbt: DbtCliResource, refresh_lock: RefreshLock
) -> Iterator[object]:
    """`dbt build` of the whole project into the candidate schema; tests are asset checks."""
    target = _target()
    as_of, history_start = refresh_lock.planned(context)
    os.environ.update(
        dbt_runner.dbt_environment(target) | dbt_runner.day_environment(as_of, history_start)
    )
    variables = json.dumps(dbt_runner.dbt_vars(target))
    # the unit tests as `pmcost refresh` runs them: when the code changed since they passed
    artefacts = dbt_runner.target_dir()
    unit_tested = unit_tests_to_run(
        refresh_lock.connection(), artefacts, target, say=context.log.info
    )
    skipped = WITHOUT_UNIT_TESTS if unit_tested is None else ()
    invocation = dbt.cli(
        ["build", "--vars", variables, *skipped],
        context=context,
        target_path=_run_folder(context),
    )
    yield from invocation.stream()  # raises when the build fails
    if unit_tested is not None:
        record_unit_tested(artefacts, target.name, unit_tested)


@dg.asset(deps=list(pmcost_dbt.keys))
def published_marts(
    context: AssetExecutionContext, refresh_lock: RefreshLock
) -> dg.MaterializeResult:
    """The publish (last): the guards, then every published table switched in at once."""
    try:
        refresh_lock.acquire()
        published = publish.publish(
            refresh_lock.connection(),
            _run_folder(context),
            loaded_through=refresh_lock.loaded_through(),
            say=context.log.info,
        )
    except BusyError as busy:
        raise _retry(busy) from busy
    except publish.GuardError as refused:
        raise dg.Failure(f"not published: {refused}") from refused
    # the anomaly alerts, as `pmcost refresh` sends them (exactly once per anomaly and day)
    sent = alerts.send(refresh_lock.connection(), published_schema(), say=context.log.info)
    if sent.failed:
        raise dg.Failure(str(sent.failure()))
    rows = {f"rows {table}": count for table, count in published.figures.rows.items()}
    as_of, _ = refresh_lock.planned(context)
    return dg.MaterializeResult(
        metadata={"as_of": str(as_of), "alerts delivered": sent.delivered, **rows}
    )


@dg.asset(deps=[published_marts])
def executive_report(
    context: AssetExecutionContext, refresh_lock: RefreshLock
) -> dg.MaterializeResult:
    """What `pmcost refresh` writes after its publish: the docs site (and as one file) for
    the published relations, and the day's executive report (Mondays the week's, the 1st the
    month's). Published already: a failure here fails the step, never the publish."""
    as_of, _ = refresh_lock.planned(context)
    artefacts = dbt_runner.target_dir()
    written, problems = generate_outputs(
        _target(), refresh_lock.connection(), as_of, artefacts, say=context.log.info
    )
    if problems:
        raise dg.Failure("published, but " + "; ".join(problems))
    return dg.MaterializeResult(
        metadata={item["period"]: dg.MetadataValue.path(item["path"]) for item in written}
    )


daily_refresh = dg.define_asset_job(
    "pmcost_daily_refresh",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="`pmcost refresh` as assets: pre-hook, dbt build with its tests, publish, "
    "docs and the executive report.",
)


@dg.schedule(job=daily_refresh, cron_schedule="30 6 * * *", execution_timezone="UTC")
def daily_refresh_schedule(context: ScheduleEvaluationContext) -> dg.RunRequest:
    """Every day at 06:30 UTC, for that day (the usage feed has loaded by then)."""
    day = context.scheduled_execution_time.date().isoformat()
    return dg.RunRequest(run_key=day, tags={AS_OF_TAG: day})


defs = dg.Definitions(
    assets=[application_tables, pmcost_dbt, published_marts, executive_report],
    jobs=[daily_refresh],
    schedules=[daily_refresh_schedule],
    resources={
        "dbt": DbtCliResource(
            project_dir=str(project_dir()),
            profiles_dir=str(dbt_runner.profiles_dir()),
            dbt_executable=dbt_runner.dbt_executable(),
            target=dbt_runner.DBT_TARGET,
        ),
        "refresh_lock": RefreshLock(),
    },
)
