"""Write-audit-publish: switch a fully tested candidate build in for every reader at once.

`dbt build` writes every published model (the marts folder) into `<schema>_candidate`
(macros/publication.sql). `publish()` then:

1. reads the candidate's publication request (a JSON comment on the schema written by the
   build's on-run-start: invocation id, as-of date, roles, guard thresholds) and the build's
   `run_results.json`, and refuses unless that same invocation built every published model and
   every model, snapshot, seed and error-severity test passed, and that it left out no data
   test of what it built;
2. compares the candidate with the last published run (application row counts, tenants per
   mart, revenue and modeled-cost totals) and refuses a move beyond the thresholds, or an empty
   application table, unless the operator accepts it;
3. in one transaction: grants USAGE on the candidate, renames the published schema aside and
   the candidate into its place, and records the run in `<schema>_publication.published_runs`.
   Readers see all old or all new tables; the tables already carry their grants, row level
   security and indexes. The previous schema is dropped afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import errors, sql

from pmcost import history_merge
from pmcost.errors import PmcostError

Say = Callable[[str], None]

# run_results statuses that let a run be published ("warn": a warn-severity test found rows)
PASSING = {"success", "pass", "warn", "no-op"}
AUDIT_TABLE = "published_runs"
# recorded with each published run (published_runs.anomalies)
ANOMALIES_TABLE = "tenant_cost_anomalies"
SUMMARY_TABLE = "executive_business_summary"
# the storage parameters the build sets on its tables (macros/statistics.sql, no_autovacuum)
AUTOVACUUM_OPTIONS = "autovacuum_enabled, toast.autovacuum_enabled"
MARTS_WITH_TENANTS = ("executive_business_summary", "business_cost_allocation")
REVENUE = ("executive_business_summary", "monthly_subscription_revenue")
MODELED_COST = ("cost_allocation_reconciliation", "monthly_cost")
# the published daily history (an incremental model) and its day column
HISTORY = ("fct_tenant_economics_daily", "economics_date")


class GuardError(PmcostError):
    """The candidate moved beyond a guard threshold (or a source is empty); nothing published."""

    def __init__(self, message: str, details: dict[str, object]) -> None:
        super().__init__(message)
        self.details = details


@dataclass
class Figures:
    """What a published run looked like: compared with the next candidate, kept in the audit."""

    sources: dict[str, int] = field(default_factory=dict)
    tenants: dict[str, int] = field(default_factory=dict)
    totals: dict[str, str] = field(default_factory=dict)  # Decimal as text: exact in JSON
    rows: dict[str, int] = field(default_factory=dict)
    # the daily history's first and last day (ISO dates)
    history: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Figures:
        return cls(
            sources={str(k): int(v) for k, v in dict(data.get("sources") or {}).items()},
            tenants={str(k): int(v) for k, v in dict(data.get("tenants") or {}).items()},
            totals={str(k): str(v) for k, v in dict(data.get("totals") or {}).items()},
            rows={str(k): int(v) for k, v in dict(data.get("rows") or {}).items()},
            history={str(k): str(v) for k, v in dict(data.get("history") or {}).items()},
        )


def _node_label(unique_id: str) -> str:
    """'test subscription_of_unknown_plan' from 'test.pmcost.subscription_of_unknown_plan.0e86…'."""
    kind, _, rest = unique_id.partition(".")
    parts = rest.split(".")[1:]  # without the package
    if kind == "test" and len(parts) > 1 and re.fullmatch(r"[0-9a-f]{10}", parts[-1]):
        parts = parts[:-1]  # dbt's hash suffix of a generic test
    return f"{kind.replace('_', ' ')} {'.'.join(parts)}"


@dataclass
class BuildReport:
    """The build's run_results.json, summarised."""

    invocation_id: str
    command: str
    failures: list[str]
    results: dict[str, str]  # unique_id -> status

    @classmethod
    def read(cls, target_dir: Path) -> BuildReport:
        path = target_dir / "run_results.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise PmcostError(
                f"{path} not found: run `dbt build` first (pmcost publish reads its results)"
            ) from None
        except (OSError, json.JSONDecodeError) as error:
            raise PmcostError(f"{path} is unreadable ({error}); run `dbt build` again") from None
        failures: list[str] = []
        skipped = 0
        results: dict[str, str] = {}
        for result in data.get("results", []):
            status = str(result.get("status"))
            unique_id = str(result.get("unique_id"))
            results[unique_id] = status
            if status == "skipped":
                skipped += 1  # a consequence of a failure upstream, counted, not listed
            elif status not in PASSING:
                message = " ".join(str(result.get("message") or "").split())
                failures.append(
                    f"{_node_label(unique_id)}: {status}" + (f" ({message})" if message else "")
                )
        if skipped:
            failures.append(f"{skipped} node(s) skipped because of them")
        return cls(
            invocation_id=str(data.get("metadata", {}).get("invocation_id", "")),
            command=str(data.get("args", {}).get("which", "")),
            failures=failures,
            results=results,
        )

    def tests(self) -> dict[str, int]:
        """Tests (data and unit) by outcome, for the refresh summary."""
        tests = {"passed": 0, "warned": 0, "failed": 0, "errored": 0, "skipped": 0}
        for unique_id, status in self.results.items():
            if not unique_id.startswith(("test.", "unit_test.")):
                continue
            key = {"pass": "passed", "warn": "warned", "fail": "failed", "skipped": "skipped"}
            tests[key.get(status, "errored")] += 1
        return tests


@dataclass
class Candidate:
    """The candidate schema and the publication request its build wrote."""

    schema: str
    published_schema: str
    invocation_id: str
    as_of_date: str
    app_schema: str
    usage_roles: list[str]
    guards: dict[str, float]
    models: list[str]  # unique ids of the published models
    tables: list[str]  # their relation names
    app_tables: list[str]  # the application tables (the `app` source), for the guards
    # data test unique id -> per node it reads, the nodes a build runs for it (itself, or
    # for a source or an ephemeral model the models that read it)
    tests: dict[str, list[list[str]]] = field(default_factory=dict)
    # published tables the build wrote only some days of, merged at the publish
    merges: list[history_merge.Merge] = field(default_factory=list)
    # the snapshots, captured into a copy of the published ones and switched in with them
    snapshots: list[str] = field(default_factory=list)
    snapshot_schema: str | None = None

    @property
    def snapshot_tables(self) -> list[str]:
        """The snapshots' relation names (a snapshot's table is named for it)."""
        return [unique_id.split(".")[-1] for unique_id in self.snapshots]

    @property
    def published_snapshot_schema(self) -> str | None:
        """Where readers and the next build find the published snapshots."""
        return self.snapshot_schema.removesuffix("_candidate") if self.snapshot_schema else None


@dataclass
class Built:
    """What the build's manifest says a publish switches in."""

    schema: str  # the candidate schema of the published models
    models: list[str]  # their unique ids
    tables: list[str]  # their relation names
    app_tables: list[str]  # the application tables (the `app` source)
    tests: dict[str, list[list[str]]]  # data tests with the built nodes they read
    snapshots: list[str]  # the snapshots' unique ids, captured into snapshot_schema
    snapshot_schema: str | None  # their candidate schema (None: the project has none)


def candidate_from_manifest(target_dir: Path) -> Built:
    """The candidate schemas, the published models and snapshots, the application tables and
    the data tests with the built nodes they read, from the build's manifest."""
    path = target_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise PmcostError(f"{path} is missing or unreadable: run `dbt build` first") from None
    nodes = manifest.get("nodes", {}).values()
    published = [
        node
        for node in nodes
        if node.get("resource_type") == "model"
        and (node.get("config") or {}).get("schema") == "published"
        and (node.get("config") or {}).get("materialized") != "ephemeral"
    ]
    snapshots = [node for node in nodes if node.get("resource_type") == "snapshot"]
    schemas = {node["schema"] for node in published}
    snapshot_schemas = {node["schema"] for node in snapshots}
    if len(schemas) != 1 or len(snapshot_schemas) > 1:
        raise PmcostError(
            f"{path}: published models are spread over {sorted(schemas)}, snapshots over "
            f"{sorted(snapshot_schemas)}"
        )
    schema = schemas.pop()
    snapshot_schema = snapshot_schemas.pop() if snapshot_schemas else None
    if not schema.endswith("_candidate") or not (snapshot_schema or "_candidate").endswith(
        "_candidate"
    ):
        raise PmcostError(
            f"{path} was written with publish_stage=published (models in {schema}); "
            "run `dbt build` without it, then publish"
        )
    return Built(
        schema=schema,
        models=sorted(node["unique_id"] for node in published),
        tables=sorted(node.get("alias") or node["name"] for node in published),
        app_tables=_app_tables(manifest),
        tests=_tests_with_parents(manifest),
        snapshots=sorted(node["unique_id"] for node in snapshots),
        snapshot_schema=snapshot_schema,
    )


def _tests_with_parents(manifest: dict) -> dict[str, list[list[str]]]:
    nodes: dict[str, dict] = manifest.get("nodes", {})
    readers: dict[str, list[str]] = {}
    for unique_id, node in nodes.items():
        if node.get("resource_type") in ("model", "snapshot"):
            for parent in (node.get("depends_on") or {}).get("nodes", []):
                readers.setdefault(parent, []).append(unique_id)

    def stand_ins(unique_id: str) -> list[str]:
        """The nodes a build runs for `unique_id`: itself, or for a source or an ephemeral
        model (never run on its own) the nodes that read it."""
        node = nodes.get(unique_id, {})
        if unique_id.startswith("source.") or (
            (node.get("config") or {}).get("materialized") == "ephemeral"
        ):
            found = {run for reader in readers.get(unique_id, []) for run in stand_ins(reader)}
            return sorted(found)
        return [unique_id]

    return {
        unique_id: [stand_ins(parent) for parent in (node.get("depends_on") or {}).get("nodes", [])]
        for unique_id, node in nodes.items()
        if node.get("resource_type") == "test"
    }


def read_candidate(conn: psycopg.Connection, target_dir: Path) -> Candidate:
    built = candidate_from_manifest(target_dir)
    schema = built.schema
    row = conn.execute(
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = %s",
        (schema,),
    ).fetchone()
    if row is None:
        raise PmcostError(
            f"no candidate schema {schema}: nothing to publish; run `dbt build` (or "
            "`pmcost refresh`) first"
        )
    try:
        request = json.loads(row[0] or "")
    except json.JSONDecodeError:
        raise PmcostError(
            f"schema {schema} has no publication request (its comment is not pmcost's); "
            "run `dbt build` again"
        ) from None
    return Candidate(
        schema=schema,
        published_schema=str(request["published_schema"]),
        invocation_id=str(request["invocation_id"]),
        as_of_date=str(request["as_of_date"]),
        app_schema=str(request["app_schema"]),
        usage_roles=[str(role) for role in request["usage_roles"]],
        guards={str(k): float(v) for k, v in dict(request["guards"]).items()},
        models=built.models,
        tables=built.tables,
        app_tables=built.app_tables,
        tests=built.tests,
        merges=[history_merge.Merge.from_request(entry) for entry in request.get("merges", [])],
        snapshots=built.snapshots,
        snapshot_schema=built.snapshot_schema,
    )


def check_build(candidate: Candidate, report: BuildReport) -> None:
    """Refuse unless this candidate's own `dbt build` ran every published model and passed."""
    if report.invocation_id != candidate.invocation_id:
        raise PmcostError(
            f"run_results.json is from dbt invocation {report.invocation_id or '?'}, but the "
            f"candidate in {candidate.schema} was built by {candidate.invocation_id}: run "
            "`dbt build` again, then publish"
        )
    if report.command != "build":
        raise PmcostError(
            f"the candidate was built by `dbt {report.command}`, not `dbt build`: its tests "
            "did not run; run `dbt build`, then publish"
        )
    if report.failures:
        shown = "; ".join(report.failures[:5])
        more = f" and {len(report.failures) - 5} more" if len(report.failures) > 5 else ""
        raise PmcostError(
            f"the build did not pass, nothing was published: {shown}{more}; "
            "fix it and run again (the published tables are unchanged)"
        )
    unbuilt = [uid.split(".")[-1] for uid in candidate.models if uid not in report.results]
    if unbuilt:
        raise PmcostError(
            f"the build did not include {', '.join(unbuilt)}: a publish switches every "
            "published model at once; run a full `dbt build`, then publish"
        )
    # every data test of what this build wrote must have run in it: a test whose every
    # parent was built (a source counts as built when a model reading it was)
    untested = sorted(
        test
        for test, parents in candidate.tests.items()
        if test not in report.results
        and parents
        and all(any(node in report.results for node in parent) for parent in parents)
    )
    if untested:
        shown = ", ".join(_node_label(test) for test in untested[:5])
        more = f" and {len(untested) - 5} more" if len(untested) > 5 else ""
        raise PmcostError(
            f"the build left out {len(untested)} data test(s) of the models it built ({shown}"
            f"{more}): a publish needs every test of what it switches in; run `dbt build` "
            "without excluding tests, then publish"
        )


# -- figures and guards -------------------------------------------------------------------------
def _qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def _app_tables(manifest: dict) -> list[str]:
    return sorted(
        source["identifier"]
        for source in manifest.get("sources", {}).values()
        if source.get("source_name") == "app"
    )


def app_tables_of(target_dir: Path) -> list[str]:
    """The application tables (the `app` source) in the last manifest dbt wrote; [] without
    one."""
    try:
        return _app_tables(json.loads((target_dir / "manifest.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def _source_key(app_schema: str, table: str) -> str:
    """How the counts, the guards and the publication record name an application table."""
    return f"{app_schema}.{table}"


def source_counts(conn: psycopg.Connection, app_schema: str, tables: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in tables:
        row = conn.execute(
            sql.SQL("select count(*) from {}").format(_qualified(app_schema, table))
        ).fetchone()
        counts[_source_key(app_schema, table)] = int(row[0]) if row else 0
    return counts


def empty_sources(counts: dict[str, int], previous: dict[str, int] | None = None) -> list[str]:
    last = previous or {}
    return [
        f"{table} has 0 rows"
        + (f", last published run {last[table]:,}" if table in last else "")
        + " (an empty application table would publish empty or zero figures)"
        for table, count in counts.items()
        if count == 0
    ]


def empty_before_build(
    conn: psycopg.Connection, published_schema: str, app_schema: str
) -> list[str]:
    """Before a build: the application tables the last published run counted that are empty
    now, as the guard's lines. No published run (or no such table any more: dbt's source
    check names it) means nothing to say yet; the publish checks every table again."""
    previous = last_published(conn, published_schema)
    if previous is None:
        return []
    prefix = f"{app_schema}."
    now: dict[str, int] = {}
    for name in previous.sources:
        if not name.startswith(prefix):
            continue
        relation = conn.execute(
            "select to_regclass(format('%%I.%%I', %s::text, %s::text))",
            (app_schema, name.removeprefix(prefix)),
        ).fetchone()
        if relation is None or relation[0] is None:
            continue
        row = conn.execute(
            sql.SQL("select exists (select from {})").format(
                _qualified(app_schema, name.removeprefix(prefix))
            )
        ).fetchone()
        now[name] = 1 if row and row[0] else 0
    return empty_sources(now, previous.sources)


def candidate_figures(
    conn: psycopg.Connection, candidate: Candidate, sources: dict[str, int]
) -> Figures:
    figures = Figures(sources=sources)
    merged = {merge.table: merge for merge in candidate.merges}
    for table in candidate.tables:
        if table in merged:
            figures.rows[table] = history_merge.merged_row_count(
                conn, candidate.schema, candidate.published_schema, merged[table]
            )
            continue
        row = conn.execute(
            sql.SQL("select count(*) from {}").format(_qualified(candidate.schema, table))
        ).fetchone()
        figures.rows[table] = int(row[0]) if row else 0
    table, column = HISTORY
    if table in candidate.tables:
        figures.history = history_days(
            conn,
            candidate.schema,
            candidate.published_schema if table in merged else None,
        )
    for table in MARTS_WITH_TENANTS:
        if table in candidate.tables:
            figures.tenants[table] = figures.rows[table]
    for label, (table, column) in (("revenue", REVENUE), ("modeled_cost", MODELED_COST)):
        if table in candidate.tables:
            row = conn.execute(
                sql.SQL("select coalesce(sum({}), 0) from {}").format(
                    sql.Identifier(column), _qualified(candidate.schema, table)
                )
            ).fetchone()
            figures.totals[label] = str(Decimal(row[0]) if row else Decimal(0))
    return figures


def history_days(conn: psycopg.Connection, schema: str, merged_into: str | None) -> dict[str, str]:
    """The daily history's first and last day in `schema` (read off its date index); with
    `merged_into`, as the merge into that schema's published table will leave it."""
    table, column = HISTORY
    schemas = [schema] + ([merged_into] if merged_into else [])
    row = conn.execute(
        sql.SQL("select min(first_day), max(last_day) from ({}) as parts").format(
            sql.SQL(" union all ").join(
                sql.SQL("select min({0}) as first_day, max({0}) as last_day from {1}").format(
                    sql.Identifier(column), _qualified(name, table)
                )
                for name in schemas
            )
        )
    ).fetchone()
    if row is None or row[0] is None:
        return {}
    return {"first_day": row[0].isoformat(), "last_day": row[1].isoformat()}


def history_first_day(conn: psycopg.Connection, published_schema: str) -> date | None:
    """The published daily history's first day; None without one."""
    if not _relation_exists(conn, published_schema, HISTORY[0]):
        return None
    first = history_days(conn, published_schema, None).get("first_day")
    return date.fromisoformat(first) if first else None


def history_breaches(
    figures: Figures, previous: Figures, guards: dict[str, float], candidate: Candidate
) -> list[str]:
    """The history never loses its older days, nor more rows than the guard allows."""
    table = HISTORY[0]
    name = f"{candidate.published_schema}.{table}"
    lines: list[str] = []
    first, before = figures.history.get("first_day"), previous.history.get("first_day")
    if before and (first is None or first > before):
        lost = (date.fromisoformat(first) - date.fromisoformat(before)).days if first else None
        lines.append(
            f"{name}: history starts {first or 'nowhere (no rows)'}, last published run "
            f"{before}"
            + (f" ({lost} days lost" if lost else " (every day lost")
            + f"; rebuild them with --history-start {before})"
        )
    rows, rows_before = figures.rows.get(table), previous.rows.get(table)
    limit = guards.get("max_history_loss", 0.2)
    if rows is not None and rows_before and rows < rows_before * (1 - limit):
        lines.append(
            f"{name}: {rows:,} rows, last published run {rows_before:,} "
            f"({(rows - rows_before) / rows_before:+.1%}, limit -{limit:.0%}, "
            "var publish_max_history_loss)"
        )
    return lines


def _moved(before: float, after: float, limit: float) -> str | None:
    """'+35.0%' when after moved from before by more than limit (a fraction), else None."""
    if before == after:
        return None
    if before == 0:
        return "from 0"
    change = (after - before) / abs(before)
    return f"{change:+.1%}" if abs(change) > limit else None


def _breach(
    name: str,
    after: Decimal,
    before: Decimal,
    limit_var: str,
    guards: dict[str, float],
    *,
    prefix: str = "",
    unit: str = "",
    money: bool = False,
) -> str | None:
    """The breach line when `after` moved from `before` beyond the guard, else None."""
    limit = guards[limit_var.removeprefix("publish_")]
    moved = _moved(float(before), float(after), limit)
    if moved is None:
        return None
    shown = "{:,.2f}" if money else "{:,}"
    return (
        f"{name}: {prefix}{shown.format(after)}{unit}, last published run "
        f"{shown.format(before)} ({moved}, limit ±{limit:.0%}, var {limit_var})"
    )


def guard_breaches(
    figures: Figures, previous: Figures | None, guards: dict[str, float], candidate: Candidate
) -> list[str]:
    """One line per breach, naming the table and both numbers."""
    breaches = empty_sources(figures.sources, previous.sources if previous else None)
    if previous is None:
        return breaches
    schema = candidate.published_schema
    lines = (
        [
            _breach(
                table,
                Decimal(count),
                Decimal(previous.sources[table]),
                "publish_max_source_change",
                guards,
                unit=" rows",
            )
            for table, count in figures.sources.items()
            if table in previous.sources and count > 0  # an empty table is reported above
        ]
        + [
            _breach(
                f"{schema}.{table}",
                Decimal(count),
                Decimal(previous.tenants[table]),
                "publish_max_tenant_change",
                guards,
                unit=" tenants",
            )
            for table, count in figures.tenants.items()
            if table in previous.tenants
        ]
        + [
            _breach(
                f"{schema}.{(REVENUE if label == 'revenue' else MODELED_COST)[0]}",
                Decimal(total),
                Decimal(previous.totals[label]),
                "publish_max_total_change",
                guards,
                prefix=f"{label.replace('_', ' ')} total ",
                money=True,
            )
            for label, total in figures.totals.items()
            if label in previous.totals
        ]
    )
    return (
        breaches
        + [line for line in lines if line is not None]
        + history_breaches(figures, previous, guards, candidate)
    )


# -- the audit table -------------------------------------------------------------------------------
def audit_schema(published_schema: str) -> str:
    return f"{published_schema}_publication"


def ensure_audit_table(conn: psycopg.Connection, published_schema: str) -> sql.Composed:
    schema = audit_schema(published_schema)
    table = _qualified(schema, AUDIT_TABLE)
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                invocation_id text primary key,
                as_of_date date not null,
                published_at timestamptz not null default now(),
                published_by text not null default current_user,
                figures jsonb not null,
                accepted_changes jsonb,
                anomalies jsonb,
                loaded_through jsonb
            )
            """
        ).format(table)
    )
    # added after the table's first version: the published anomalies of the run's day, and
    # what the late-arriving feeds had loaded (pmcost.lookback)
    for column in ("anomalies", "loaded_through"):
        conn.execute(
            sql.SQL("alter table {} add column if not exists {} jsonb").format(
                table, sql.Identifier(column)
            )
        )
    conn.execute(
        sql.SQL("comment on table {} is {}").format(
            table,
            sql.Literal(
                "One row per published refresh: its figures (application row counts, tenants "
                "per mart, revenue and modeled-cost totals, rows per table), the guard "
                "breaches an operator accepted, if any, the anomalies it published "
                "(tenant_cost_anomalies, with the company name), which the weekly and monthly "
                "reports list, and the latest load of each late-arriving feed the refresh "
                "read (NULL when it read none), from which the next refresh finds the days "
                "late rows describe. Written by pmcost publish."
            ),
        )
    )
    return table


def _last_published_value(conn: psycopg.Connection, published_schema: str, column: str) -> Any:
    """A column of the last published run's record; None before the first publish."""
    if not _relation_exists(conn, audit_schema(published_schema), AUDIT_TABLE):
        return None
    row = conn.execute(
        sql.SQL("select {} from {} order by published_at desc limit 1").format(
            sql.Identifier(column), _qualified(audit_schema(published_schema), AUDIT_TABLE)
        )
    ).fetchone()
    return None if row is None else row[0]


def last_published_as_of(conn: psycopg.Connection, published_schema: str) -> date | None:
    """The as-of date of the marts readers see now (the last published run's); None before
    the first publish."""
    value = _last_published_value(conn, published_schema, "as_of_date")
    return value if isinstance(value, date) else None


def rewind_breach(candidate: Candidate, published_as_of: date | None) -> str | None:
    """The line when publishing the candidate would move the marts back to an earlier day."""
    as_of = date.fromisoformat(candidate.as_of_date)
    if published_as_of is None or as_of >= published_as_of:
        return None
    return (
        f"{candidate.published_schema}: the marts would be as of {as_of}, last published run "
        f"{published_as_of} (the dashboards would move into the past; `pmcost refresh --as-of "
        f"{as_of}` rewrites the history and keeps the marts at {published_as_of}, "
        "--rewind-marts publishes them as of the earlier day)"
    )


def last_loaded_through(
    conn: psycopg.Connection, published_schema: str
) -> dict[str, str | None] | None:
    """What the late-arriving feeds had loaded at the last publish (pmcost.lookback); None
    before the first publish, or when that publish recorded none."""
    try:
        value = _last_published_value(conn, published_schema, "loaded_through")
    except psycopg.errors.UndefinedColumn:  # an audit table from before the column
        return None
    return dict(value) if isinstance(value, dict) else None


def last_published(conn: psycopg.Connection, published_schema: str) -> Figures | None:
    figures = _last_published_value(conn, published_schema, "figures")
    return None if figures is None else Figures.from_json(dict(figures))


# -- the switch ----------------------------------------------------------------------------------
def _relation_exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    row = conn.execute(
        "select to_regclass(format('%%I.%%I', %s::text, %s::text))", (schema, name)
    ).fetchone()
    return row is not None and row[0] is not None


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone()
    return row is not None


def outside_dependents(conn: psycopg.Connection, schema: str) -> list[str]:
    """Views elsewhere that read a table of `schema`: a switch would leave them on old data."""
    rows = conn.execute(
        """
        select distinct view_ns.nspname || '.' || view.relname
        from pg_depend as dep
        join pg_rewrite as rule on rule.oid = dep.objid
        join pg_class as view on view.oid = rule.ev_class
        join pg_namespace as view_ns on view_ns.oid = view.relnamespace
        join pg_class as used on used.oid = dep.refobjid
        join pg_namespace as used_ns on used_ns.oid = used.relnamespace
        where dep.classid = 'pg_rewrite'::regclass
          and used_ns.nspname = %s and view_ns.nspname <> %s
        order by 1
        """,
        (schema, schema),
    ).fetchall()
    return [str(row[0]) for row in rows]


def drop_schema(conn: psycopg.Connection, schema: str, *, lock_timeout_ms: int) -> str | None:
    """Drop a retired or stale schema; returns why it could not be dropped (it then stays)."""
    if not _schema_exists(conn, schema):
        return None
    dependents = outside_dependents(conn, schema)
    if dependents:
        return f"{', '.join(dependents)} read tables of {schema}; drop or recreate them"
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("set local lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms"))
            )
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
    except errors.LockNotAvailable:
        return f"readers still hold tables of {schema} after {lock_timeout_ms} ms"
    return None


RELATION_KINDS = {
    "r": "table",
    "p": "table",
    "f": "foreign table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
}


def carry_foreign_relations(
    conn: psycopg.Connection, published: str, into: str, built: list[str]
) -> list[str]:
    """Move relations of the published schema that this build did not write (`built`: a
    table someone created there, an old model's or snapshot's table) into the schema
    switched in for it, so the switch never drops them. Sequences owned by a table move
    with it."""
    rows = conn.execute(
        """
        select c.relname, c.relkind
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = %s and c.relkind::text = any(%s) and not c.relname = any(%s)
          and not exists (
              select from pg_depend as d
              where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')
          )
        order by c.relname
        """,
        (published, list(RELATION_KINDS), built),
    ).fetchall()
    for name, kind in rows:
        conn.execute(
            sql.SQL("alter {} {}.{} set schema {}").format(
                sql.SQL(RELATION_KINDS[kind]),
                sql.Identifier(published),
                sql.Identifier(name),
                sql.Identifier(into),
            )
        )
    return [str(name) for name, _ in rows]


class Switch(NamedTuple):
    """A candidate schema the publish renames into its published one (which goes aside as
    `<published>_previous`), and the relations the build wrote in it."""

    candidate: str
    published: str
    built: list[str]

    @property
    def retired(self) -> str:
        return f"{self.published}_previous"


@dataclass
class PublishResult:
    candidate: Candidate
    figures: Figures
    previous: Figures | None
    breaches: list[str]
    accepted: bool
    report: BuildReport

    def guard_report(self) -> dict[str, object]:
        """The guards' side of the refresh summary."""
        return {
            "figures": self.figures.to_json(),
            "last_published": self.previous.to_json() if self.previous else None,
            "breaches": self.breaches,
            "accepted": self.accepted and bool(self.breaches),
            "thresholds": self.candidate.guards,
        }


def publish(
    conn: psycopg.Connection,
    target_dir: Path,
    *,
    accept_changes: bool = False,
    rewind_marts: bool = False,
    lock_timeout_ms: int = 10000,
    sources: dict[str, int] | None = None,
    loaded_through: dict[str, str | None] | None = None,
    say: Say = print,
) -> PublishResult:
    """Check the candidate build, apply the guards, switch it in. Raise on any refusal.

    `rewind_marts`: publish a candidate whose as-of date is before the published one (a
    backfill that moves the marts back), which is otherwise refused as a guard breach.

    `sources`: the application tables' row counts, as a refresh takes them while dbt
    starts; used when they name the tables the candidate reads, else they are counted now.

    `loaded_through`: the latest load of each late-arriving feed, as the refresh read them
    before its build (pmcost.lookback), recorded with the run; None records none, and the
    next refresh then recomputes its whole lookback."""
    if not conn.autocommit:
        raise PmcostError("publish needs an autocommit connection")
    report = BuildReport.read(target_dir)
    candidate = read_candidate(conn, target_dir)
    check_build(candidate, report)
    wanted = {_source_key(candidate.app_schema, table) for table in candidate.app_tables}
    if sources is None or set(sources) != wanted:
        sources = source_counts(conn, candidate.app_schema, candidate.app_tables)
    figures = candidate_figures(conn, candidate, sources)
    previous = last_published(conn, candidate.published_schema)
    breaches = guard_breaches(figures, previous, candidate.guards, candidate)
    rewind = rewind_breach(candidate, last_published_as_of(conn, candidate.published_schema))
    if rewind and not rewind_marts:
        breaches.append(rewind)
    result = PublishResult(candidate, figures, previous, breaches, accept_changes, report)
    if breaches and not accept_changes:
        raise GuardError(
            "refusing to publish: "
            + "; ".join(breaches)
            + ". The published tables are unchanged. If the change is real, run again with "
            "--accept-changes (it is recorded with the run)",
            details=result.guard_report(),
        )
    for breach in breaches:
        say(f"publish: accepted: {breach}")

    published = candidate.published_schema
    # the schemas switched together: the marts, then the snapshots
    switched = [Switch(candidate.schema, published, candidate.tables)]
    if candidate.snapshot_schema and _schema_exists(conn, candidate.snapshot_schema):
        switched.append(
            Switch(
                candidate.snapshot_schema,
                str(candidate.published_snapshot_schema),
                candidate.snapshot_tables,
            )
        )
    # a snapshot never published must have been captured by this build (its candidate
    # table could be left from an earlier invocation); a published one was copied afresh
    uncaptured = [
        table
        for unique_id, table in zip(candidate.snapshots, candidate.snapshot_tables, strict=True)
        if unique_id not in report.results
        and not _relation_exists(conn, str(candidate.published_snapshot_schema), table)
    ]
    if uncaptured:
        raise PmcostError(
            f"the build did not capture {', '.join(uncaptured)}, never published yet: run a "
            "full `dbt build`, then publish"
        )
    for switch in switched:
        dependents = outside_dependents(conn, switch.published)
        if dependents:
            raise PmcostError(
                f"{', '.join(dependents)} read tables of {switch.published}: after the switch "
                "they would keep reading the retired tables; drop them, or build them as dbt "
                "models"
            )
        problem = drop_schema(conn, switch.retired, lock_timeout_ms=lock_timeout_ms)
        if problem:
            raise PmcostError(
                f"cannot clear {switch.retired} from an earlier publish: {problem}; retry"
            )
    audit = ensure_audit_table(conn, published)
    with conn.transaction():
        conn.execute(
            sql.SQL("set local lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms"))
        )
        for merge in candidate.merges:
            done = history_merge.merge(
                conn, candidate.schema, published, merge, lock_timeout_ms=lock_timeout_ms
            )
            say(f"publish: {done}")
        for switch in switched:
            if not _schema_exists(conn, switch.published):
                continue
            for kept in carry_foreign_relations(
                conn, switch.published, switch.candidate, switch.built
            ):
                say(
                    f"publish: kept {switch.published}.{kept} (not built by this project) "
                    "across the switch"
                )
        # the build kept autovacuum off its tables while it wrote them (macros/statistics.sql).
        # A table the next publish replaces keeps it off: nothing updates it, its statistics
        # are the build's, and an autovacuum still on it when the next publish drops the
        # retired schema held that drop up for a deadlock_timeout, until PostgreSQL cancelled
        # it. A merged history is updated in place by every publish: it gets autovacuum back,
        # for the rows each merge deletes.
        for merge in candidate.merges:
            conn.execute(
                sql.SQL("alter table {} reset ({})").format(
                    _qualified(candidate.schema, merge.table), sql.SQL(AUTOVACUUM_OPTIONS)
                )
            )
        if candidate.usage_roles:
            conn.execute(
                sql.SQL("grant usage on schema {} to {}").format(
                    sql.Identifier(candidate.schema),
                    sql.SQL(", ").join(sql.Identifier(role) for role in candidate.usage_roles),
                )
            )
        for switch in switched:
            if _schema_exists(conn, switch.published):
                conn.execute(
                    sql.SQL("alter schema {} rename to {}").format(
                        sql.Identifier(switch.published), sql.Identifier(switch.retired)
                    )
                )
            conn.execute(
                sql.SQL("alter schema {} rename to {}").format(
                    sql.Identifier(switch.candidate), sql.Identifier(switch.published)
                )
            )
        conn.execute(
            sql.SQL("comment on schema {} is {}").format(
                sql.Identifier(published),
                sql.Literal(
                    f"Published by pmcost: dbt invocation {candidate.invocation_id}, "
                    f"as of {candidate.as_of_date}"
                ),
            )
        )
        conn.execute(
            sql.SQL(
                "insert into {} (invocation_id, as_of_date, figures, accepted_changes, "
                "loaded_through, anomalies) values (%s, %s, %s, %s, %s, {})"
            ).format(audit, _anomalies_of(candidate)),
            (
                candidate.invocation_id,
                candidate.as_of_date,
                json.dumps(figures.to_json()),
                json.dumps(breaches) if breaches else None,
                json.dumps(loaded_through) if loaded_through is not None else None,
            ),
        )
    for merge in candidate.merges:  # statistics with the run's days, now readers have them
        try:
            conn.execute(sql.SQL("analyze {}").format(_qualified(published, merge.table)))
        except psycopg.Error as error:  # published already: autovacuum analyzes it later
            say(
                f"publish: analyze {published}.{merge.table} did not run ({error}); autovacuum will"
            )
    for switch in switched:
        problem = drop_schema(conn, switch.retired, lock_timeout_ms=lock_timeout_ms)
        if problem:
            say(f"publish: {switch.retired} kept for now ({problem}); the next publish drops it")
    say(
        f"publish: {len(candidate.tables)} tables switched in together in {published} "
        f"(as of {candidate.as_of_date})"
    )
    return result


def _anomalies_of(candidate: Candidate) -> sql.Composable:
    """The run's anomalies as JSON, read from its tables (now published: the statement runs
    after the switch, in the same transaction); NULL for a project without them."""
    if not {ANOMALIES_TABLE, SUMMARY_TABLE} <= set(candidate.tables):
        return sql.NULL
    return sql.SQL(
        """(
            select coalesce(jsonb_agg(to_jsonb(a) || jsonb_build_object(
                'company_name', s.company_name) order by a.anomaly_type, a.tenant_id), '[]')
            from {anomalies} as a
            left join {summary} as s on s.tenant_id = a.tenant_id
        )"""
    ).format(
        anomalies=_qualified(candidate.published_schema, ANOMALIES_TABLE),
        summary=_qualified(candidate.published_schema, SUMMARY_TABLE),
    )


# the schemas of what a refresh keeps between runs, in production
KEPT_SCHEMAS = ("analytics", "analytics_snapshots", "analytics_publication", "finance")


def kept_state(conn: psycopg.Connection) -> dict[str, str]:
    """An MD5 of every row of every table a refresh keeps between runs (KEPT_SCHEMAS), by
    table: equal before and after a run means that run changed none of them."""
    tables = conn.execute(
        "select schemaname, tablename from pg_tables where schemaname = any(%s) order by 1, 2",
        (list(KEPT_SCHEMAS),),
    ).fetchall()
    state: dict[str, str] = {}
    for schema, table in tables:
        row = conn.execute(
            sql.SQL(
                "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
                "from {}.{} as t"
            ).format(sql.Identifier(schema), sql.Identifier(table))
        ).fetchone()
        state[f"{schema}.{table}"] = str(row[0]) if row else ""
    return state
