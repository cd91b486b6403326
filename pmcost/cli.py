"""`pmcost`: the command line. Thin: each subcommand calls a function the tests call too."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import psycopg

from pmcost import db, ddl, demo_data, demo_finance, finance, logs, publish, report
from pmcost import dbt as dbt_runner
from pmcost.errors import PmcostError, UsageError
from pmcost.refresh import (
    EXIT_CODES,
    PRODUCTION_STATE,
    REFRESH_LOCK,
    docs_parse_state,
    published_schema,
    refresh,
)
from pmcost.server import HOST, EmbeddedServer, free_port
from pmcost.settings import DEFAULT_APP_SCHEMA, DEFAULT_TARGET, Target, project_dir, state_dir
from pmcost.signals import SignalGuard

EXAMPLE_QUERY = (
    "select company_name, plan_name, business_health_status, monthly_subscription_revenue, "
    "total_operational_cost from analytics.executive_business_summary "
    "order by cost_efficiency_score desc limit 5"
)


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD") from None


def _target(args: argparse.Namespace) -> Target:
    return Target(name=args.target, app_schema=args.app_schema)


def _ddl_options(args: argparse.Namespace) -> ddl.RunOptions:
    if args.lock_timeout_ms < 1:
        raise UsageError("--lock-timeout-ms must be at least 1")
    return ddl.RunOptions(lock_timeout_ms=args.lock_timeout_ms, max_attempts=args.max_attempts)


# -- subcommands -----------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    server = EmbeddedServer(state_dir())
    info = server.recover(port=args.port) if args.recover else server.up(port=args.port)
    print(f"embedded PostgreSQL running: {info.url()} (password: `pmcost env`)")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = EmbeddedServer(state_dir()).down()
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info = EmbeddedServer(state_dir()).info()
    if info is None:
        print("embedded PostgreSQL: stopped (start it with `pmcost up`)")
        return 3
    print(f"embedded PostgreSQL: running on {info.host}:{info.port}, data in {info.data_dir}")
    print(f"connection string: {info.url()}  (with password: `pmcost env`)")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """Shell exports so plain `dbt`, `mf` and `psql` reach the embedded server: the libpq
    variables every output of the profile reads. dbt's target stays the profile's default,
    `dev` (a person's own schemas); `--target prod` reads production."""
    info = db.embedded_info()
    exports = {
        **info.dbt_env(),
        "DBT_PROFILES_DIR": str(dbt_runner.profiles_dir()),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PMCOST_TARGET": "embedded",
        "DATABASE_URL": info.url(with_password=True),
    }
    for key, value in exports.items():
        print(f"export {key}='{value}'")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    target = _target(args)
    with db.connection(target) as conn:
        summary = demo_data.load(
            conn,
            tenants=args.tenants,
            seed=args.seed,
            anchor=args.anchor_date,
            schema=target.app_schema,
            progress=print,
        )
    total = sum(summary.rows.values())
    print(
        f"demo data: {summary.tenants:,} tenants, {total:,} rows, seed {summary.seed}, "
        f"anchored on {summary.anchor_date} ({summary.seconds:.1f}s)"
    )
    return 0


def cmd_ddl(args: argparse.Namespace) -> int:
    target = _target(args)
    schema = target.app_schema
    with db.connection(target) as conn:
        if args.action == "plan":
            current = ddl.plan(conn, schema)
            for statement in ddl.render(conn, current.steps):
                print(statement)
            for conflict in current.conflicts:
                print(f"-- left alone: {conflict}", file=sys.stderr)
            return 1 if current.conflicts else 0
        if args.action == "apply":
            result = ddl.apply(conn, schema, options=_ddl_options(args))
        elif args.action == "rollback":
            if args.drop_columns and not args.yes:
                raise UsageError(
                    "--drop-columns destroys Finance's approximate_cost values; "
                    "add --yes to confirm (nothing was changed)"
                )
            if args.yes and not args.drop_columns:
                raise UsageError("--yes only confirms --drop-columns; nothing was changed")
            if args.dry_run:
                steps = ddl.rollback_steps(conn, schema, drop_columns=args.drop_columns)
                for statement in ddl.render(conn, steps):
                    print(statement)
                return 0
            result = ddl.rollback(
                conn, schema, drop_columns=args.drop_columns, options=_ddl_options(args)
            )
        else:  # verify
            print("guide's verification query (information_schema.columns):")
            for row in ddl.guide_verification(conn, schema):
                print("  " + " | ".join("NULL" if value is None else str(value) for value in row))
            diffs = ddl.verify(conn, schema)
            for diff in diffs:
                print(f"  DIFF {diff}")
            print("verify: OK" if not diffs else f"verify: {len(diffs)} difference(s)")
            return 0 if not diffs else 1
    for conflict in result.conflicts:
        print(f"left alone: {conflict}", file=sys.stderr)
    for failure in result.failures:
        print(f"failed: {failure}", file=sys.stderr)
    if result.ok and not result.applied:
        print("nothing to do: already in the target state")
    return 0 if result.ok else 1


def cmd_refresh(args: argparse.Namespace) -> int:
    refresh(
        _target(args),
        as_of=args.as_of,
        history_start=args.history_start,
        full_refresh=args.full_refresh,
        wait_seconds=args.wait,
        ddl_options=_ddl_options(args),
        accept_changes=args.accept_changes,
        rewind_marts=args.rewind_marts,
        skip_freshness=args.skip_freshness,
        all_unit_tests=args.all_unit_tests,
    )
    print("refresh: OK (published)")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Switch in the candidate of the last `dbt build` (what `pmcost refresh` does last)."""
    target = _target(args)
    with db.connection(target) as conn, SignalGuard("nothing was published") as guard:
        lock = ddl.AdvisoryLock(conn, REFRESH_LOCK, "pmcost refresh", args.wait, print)
        with lock, guard.deferred("the publish had begun and completed: the new tables are live"):
            publish.publish(
                conn,
                dbt_runner.target_dir(),
                accept_changes=args.accept_changes,
                rewind_marts=args.rewind_marts,
            )
    return 0


def cmd_snapshots_repair(args: argparse.Namespace) -> int:
    """Remove the snapshot versions captured by runs that never published (earlier versions
    of the project wrote them straight into the published snapshots), under the refresh's
    lock: macro repair_snapshots (macros/snapshot_publication.sql)."""
    target = _target(args)
    with db.connection(target) as conn, SignalGuard("the repair was stopped") as guard:
        lock = ddl.AdvisoryLock(conn, REFRESH_LOCK, "pmcost refresh", args.wait, print)
        with lock:
            code = dbt_runner.run(
                ["run-operation", "repair_snapshots"], target, extra_vars=None, guard=guard
            )
    if code != 0:
        raise PmcostError("the snapshot repair failed (see dbt's output above); nothing changed")
    return 0


def cmd_dbt(args: argparse.Namespace) -> int:
    dbt_args = list(args.dbt_args)
    if dbt_args[:1] == ["--"]:
        dbt_args = dbt_args[1:]
    if not dbt_args:
        raise UsageError("give dbt's arguments, e.g. `pmcost dbt -- build --select marts`")
    target = _target(args)
    passthrough = any(arg in ("--target", "-t", "--vars") for arg in dbt_args) or dbt_args[0] in (
        "deps",
        "clean",
        "debug",
        "init",
    )
    code = dbt_runner.run(
        dbt_args,
        target,
        as_of=args.as_of,
        history_start=args.history_start,
        with_vars=not passthrough,
    )
    if code == 0 and dbt_args[0] in ("build", "run"):
        print(
            "pmcost: built into the candidate schema; readers see it after `pmcost publish` "
            "(`pmcost refresh` does both)"
        )
    return code


def cmd_bench(args: argparse.Namespace) -> int:
    """The benchmark, which lives beside the package in the checkout (benchmarks/)."""
    checkout = str(project_dir())
    if checkout not in sys.path:
        sys.path.insert(0, checkout)
    try:
        from benchmarks import bench  # heavy and rarely used: imported on demand
    except ImportError as missing:
        raise UsageError(
            f"the benchmark lives in the checkout's benchmarks/ folder, not found under "
            f"{checkout}: run it from a clone of the repository ({missing})"
        ) from None

    # a terminated benchmark still deletes its throwaway server (finally blocks run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    try:
        sizes = [int(size) for size in args.tenants.split(",")]
    except ValueError:
        raise UsageError(f"--tenants {args.tenants!r}: give a number or a comma list") from None
    if any(size < 1 for size in sizes):
        raise UsageError("--tenants must be at least 1")
    targets = [name.strip() for name in args.target.split(",") if name.strip()]
    unknown = sorted(set(targets) - set(bench.TARGETS))
    if unknown or not targets:
        raise UsageError(
            f"--target {args.target!r}: give one or more of {', '.join(bench.TARGETS)}"
        )
    if args.chaos:
        if targets != ["embedded"]:
            raise UsageError(
                "--chaos kills refreshes and drops connections: it runs on a throwaway "
                "embedded server only; leave out --target"
            )
        figures = bench.chaos(sizes[0])
        print(f"figures: {bench.write_json(figures, 'chaos')}")
        return 0
    if len(sizes) > 1:
        failed = False
        for target in targets:  # each server's table, each with its own limit
            figures, breaches = bench.scaling(
                sizes, seconds=args.seconds, history=not args.no_history, target=target
            )
            print(f"figures: {bench.write_json(figures, f'scaling-{target}')}")
            failed = failed or bool(breaches)
        return 1 if failed else 0
    for target in targets:
        figures = bench.run(sizes[0], seconds=args.seconds, target=target)
        bench.print_table(figures)
        print(f"figures: {bench.write_json(figures, f'bench-{target}')}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Generate the docs site and serve it on a free loopback port until Ctrl-C / SIGTERM."""
    target = _target(args)
    published = dbt_runner.PUBLISHED_VARS  # the relations readers query
    with SignalGuard("the docs server was stopped") as guard:
        if not args.no_generate:
            code = dbt_runner.run(["docs", "generate"], target, extra_vars=published, guard=guard)
            if code != 0:
                raise PmcostError("`dbt docs generate` failed (see dbt's output above)")
        port = args.port or free_port()
        print(f"docs site: http://{HOST}:{port}  (Ctrl-C stops it)", flush=True)
        return dbt_runner.run(
            ["docs", "serve", "--host", HOST, "--port", str(port), "--no-browser"],
            target,
            extra_vars=published,
            guard=guard,
        )


def cmd_report(args: argparse.Namespace) -> int:
    """The executive report of the period ending on the as-of day (default: the published
    marts' day), from the published tables and the metrics production's semantic manifest
    defines (target/production/, kept by each refresh)."""
    target = _target(args)
    root = Path(args.out).resolve() if args.out else report.report_root()
    manifest = _production_semantic_manifest(target)
    with db.connection(target) as conn:
        written = report.write_report(
            conn,
            manifest=manifest,
            schema=published_schema(),
            period=args.period,
            as_of=args.as_of,
            root=root,
        )
    print(f"report: {written.path} ({written.seconds:.1f} s; internal, owner-only)")
    return 0


def _production_semantic_manifest(target: Target) -> Path:
    """MetricFlow's manifest of the published relations: the one the last refresh kept, else
    (a checkout that never ran `pmcost refresh`, e.g. one the Dagster job refreshes) a parse
    for the published relations, into a folder of its own so that target/ is left alone."""
    kept = dbt_runner.target_dir() / PRODUCTION_STATE / report.SEMANTIC_MANIFEST
    if kept.is_file():
        return kept
    print("report: parsing the project for the published relations (a refresh keeps the result)")
    with tempfile.TemporaryDirectory(prefix="pmcost-report-") as folder:
        # from the docs step's partial-parse state (the same vars) where a refresh left one:
        # dbt re-reads only what changed since, or parses in full if it no longer matches
        docs_state = docs_parse_state(dbt_runner.target_dir())
        if docs_state.is_file():
            shutil.copyfile(docs_state, Path(folder) / "partial_parse.msgpack")
        code = dbt_runner.run(
            ["parse", "--target-path", folder], target, extra_vars=dbt_runner.PUBLISHED_VARS
        )
        parsed = Path(folder) / report.SEMANTIC_MANIFEST
        if code != 0 or not parsed.is_file():
            raise PmcostError("`dbt parse` failed (see dbt's output above); no report written")
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(parsed, kept)
    return kept


def cmd_psql(args: argparse.Namespace) -> int:
    """The bundled psql; the connection (password included) goes in PG* variables, not argv,
    where every local user could read it."""
    info = db.embedded_info()
    psql = EmbeddedServer(state_dir()).bin_dir() / "psql"
    env = {**os.environ, **info.libpq_env()}
    return subprocess.run([str(psql), *args.psql_args], env=env, check=False).returncode


def cmd_finance_load(args: argparse.Namespace) -> int:
    """`pmcost invoices load FILE` / `pmcost ledger load FILE`: validate whole, then load."""
    target = _target(args)
    kind = finance.INVOICES if args.command == "invoices" else finance.LEDGER
    with db.connection(target) as conn:
        result = finance.load(conn, args.file, kind, say=print)
    print(result.describe())
    if result.changed:
        print("run `pmcost refresh` to reconcile (the marts read Finance's tables at build time)")
    return 0


# the days of daily history `pmcost build` publishes: nine whole weeks
DEMO_HISTORY_DAYS = 63

# what `pmcost build` builds before the demo's Finance files: the models, seeds and snapshots
# the modeled costs are made of; their tests run in the refresh that follows
DEMO_COSTS_RESOURCES = [
    *("--resource-type", "model"),
    *("--resource-type", "seed"),
    *("--resource-type", "snapshot"),
]


def cmd_build(args: argparse.Namespace) -> int:
    """Everything on the embedded server: start, demo data, pre-hook, dbt build, docs."""
    target = Target(name="embedded", app_schema=args.app_schema)
    info = EmbeddedServer(state_dir()).up()
    print(f"embedded PostgreSQL running: {info.url()}")
    with db.connection(target) as conn:
        demo_data.load(
            conn,
            tenants=args.tenants,
            seed=args.seed,
            anchor=args.anchor_date,
            schema=target.app_schema,
            progress=print,
        )
    # the marts describe the demo's last day (today unless --anchor-date says otherwise)
    as_of = args.as_of or args.anchor_date

    def demo_finance_files(session: dbt_runner.Session) -> None:
        """Finance's demo files are written from the modeled resource costs, with planted
        discrepancies: build those models alone first, into the candidate schema (no tests,
        nothing published), then load the files with the commands Finance uses; the
        refresh's build then builds, tests, reconciles and publishes everything. One dbt
        process serves both builds (dbt is imported once)."""
        selected = ["build", "--select", f"+{demo_finance.COSTS_MODEL}", *DEMO_COSTS_RESOURCES]
        if session.run(selected) != 0:
            raise PmcostError(
                f"dbt could not build {demo_finance.COSTS_MODEL} for the demo's Finance files "
                "(see dbt's output above)"
            )
        # the schema the build wrote, as its manifest names it (the profile decides it)
        costs = publish.candidate_from_manifest(dbt_runner.target_dir()).schema
        with db.connection(target) as conn:
            demo_finance.set_demo_record_values(
                conn, marts_schema=costs, app_schema=target.app_schema
            )
            files = demo_finance.write(
                conn,
                state_dir() / "demo" / "finance",
                as_of,
                marts_schema=costs,
                app_schema=target.app_schema,
            )
            for path, kind in ((files.invoices, finance.INVOICES), (files.ledger, finance.LEDGER)):
                print(finance.load(conn, path, kind, say=print).describe())

    # the demo data was just replaced on purpose: its figures may move beyond the guards
    summary = refresh(
        target,
        as_of=as_of,
        # weeks of daily history, so weekly metrics show a trend and the anomalies' baseline
        # is real from the start
        history_start=as_of - timedelta(days=max(args.history_days, 1) - 1),
        ddl_options=ddl.RunOptions(),
        accept_changes=True,
        prepare=demo_finance_files,
    )
    print()
    print(
        "Built: demo data, column DDL, seeds, staging, intermediate and mart models, tests, "
        "publish, docs."
    )
    print(f"  connection string : {info.url()}  (with password: `pmcost env`)")
    print(
        "  marts             : analytics.executive_business_summary, "
        "analytics.business_cost_allocation, analytics.cost_allocation_reconciliation"
    )
    print(
        "  reconciliation    : analytics.invoice_reconciliation_by_resource, "
        "analytics.invoice_reconciliation_monthly (demo files in .pmcost/demo/finance/)"
    )
    print(f'  query             : .venv/bin/pmcost psql -c "{EXAMPLE_QUERY}"')
    print("  docs site         : .venv/bin/pmcost docs   (or make docs)")
    for written in summary.reports:
        label = "executive report" if written["period"] != "lineage" else "docs, one file"
        print(f"  {label:<18}: {written['path']}")
    print(
        '  plain dbt         : eval "$(.venv/bin/pmcost env)" && .venv/bin/dbt build   '
        "(your own dev schemas; README, For analysts)"
    )
    return 0


# -- parser ----------------------------------------------------------------------------------------
def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=os.environ.get("PMCOST_TARGET", DEFAULT_TARGET),
        help="dbt target: `embedded` (default) or `postgres` (PG* variables)",
    )
    parser.add_argument(
        "--app-schema",
        default=os.environ.get("PMCOST_APP_SCHEMA", DEFAULT_APP_SCHEMA),
        help="schema of the application tables (default: public)",
    )


def _add_ddl_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-timeout-ms",
        type=int,
        default=3000,
        help="lock_timeout of each DDL statement, in ms (default 3000)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=20,
        help="tries per statement before giving up (default 20)",
    )


def _add_accept_changes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--accept-changes",
        action="store_true",
        help="publish even when a guard stops it (an empty application table, row counts, "
        "tenants, totals or the history moving beyond the thresholds); recorded with the run",
    )
    parser.add_argument(
        "--rewind-marts",
        action="store_true",
        help="with an as-of date before the published one: publish the marts as of that day "
        "(by default a backfill rewrites the history and the marts stay at the latest day)",
    )


def _add_demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=300, help="number of tenants (default 300)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--anchor-date",
        type=_iso_date,
        default=date.today(),
        help="the day the data ends on, YYYY-MM-DD (default today)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmcost", description="PenguinMails cost and margin analytics."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="json: pmcost's own messages as JSON lines, and dbt's too (default: json when "
        "$DBT_LOG_FORMAT is json, else text)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start the embedded PostgreSQL")
    up.add_argument("--port", type=int, help="loopback port (default: a free one)")
    up.add_argument(
        "--recover",
        action="store_true",
        help="the data folder exists but .pmcost/server.json is lost or corrupt: keep the "
        "data, set a new password, write server.json again",
    )
    up.set_defaults(func=cmd_up)
    commands.add_parser("down", help="stop the embedded PostgreSQL").set_defaults(func=cmd_down)
    commands.add_parser("status", help="is the embedded PostgreSQL running?").set_defaults(
        func=cmd_status
    )
    commands.add_parser(
        "env", help="print shell exports for plain dbt/psql on the embedded server"
    ).set_defaults(func=cmd_env)

    demo = commands.add_parser("demo-data", help="create and fill the application tables")
    _add_target(demo)
    _add_demo_options(demo)
    demo.set_defaults(func=cmd_demo_data)

    ddl_parser = commands.add_parser("ddl", help="the approximate_cost column DDL pre-hook")
    ddl_parser.add_argument(
        "action",
        choices=("plan", "apply", "verify", "rollback"),
        help="plan: print statements; apply; verify: check the catalog; "
        "rollback: drop indexes and constraints",
    )
    _add_target(ddl_parser)
    _add_ddl_options(ddl_parser)
    ddl_parser.add_argument(
        "--drop-columns",
        action="store_true",
        help="rollback: also drop the columns (destroys their values)",
    )
    ddl_parser.add_argument("--yes", action="store_true", help="confirm --drop-columns")
    ddl_parser.add_argument(
        "--dry-run", action="store_true", help="rollback: print the statements only"
    )
    ddl_parser.set_defaults(func=cmd_ddl)

    refresh_parser = commands.add_parser(
        "refresh",
        help="the scheduled job: source freshness, pre-hook, dbt build, publish, docs",
        description="Source freshness, pre-hook, `dbt build` into the candidate schema, "
        "guards, publish (every published table switches at once), docs. A JSON summary of "
        "each run is written to target/refresh/last.json.",
        epilog="exit codes:\n"
        + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target(refresh_parser)
    _add_ddl_options(refresh_parser)
    refresh_parser.add_argument(
        "--as-of",
        type=_iso_date,
        help="the day the marts describe, YYYY-MM-DD (default today); a day before the "
        "published one is a backfill: the history is rewritten from it (or from "
        "--history-start) and the marts stay at the published day",
    )
    refresh_parser.add_argument(
        "--history-start",
        type=_iso_date,
        help="backfill the daily fact from this day to the as-of date, YYYY-MM-DD",
    )
    refresh_parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild incremental models from scratch: the daily history from its first "
        "published day (or from --history-start)",
    )
    refresh_parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a running refresh (default: exit)",
    )
    _add_accept_changes(refresh_parser)
    refresh_parser.add_argument(
        "--skip-freshness",
        action="store_true",
        help="do not run `dbt source freshness` first (a stale feed then no longer stops the "
        "refresh); for a run an operator has decided to publish anyway",
    )
    refresh_parser.add_argument(
        "--all-unit-tests",
        action="store_true",
        help="run dbt's unit tests even when the code is unchanged since they last passed "
        "(by default a refresh runs them only after a change to the project, dbt or PostgreSQL)",
    )
    refresh_parser.set_defaults(func=cmd_refresh)

    publish_parser = commands.add_parser(
        "publish",
        help="switch in the candidate of the last `dbt build` (after the guards)",
        description="For plain dbt users: after `dbt build` (which builds into the candidate "
        "schema), check its run_results.json and the guards, then switch every published "
        "table in at once. `pmcost refresh` runs this itself.",
    )
    _add_target(publish_parser)
    _add_accept_changes(publish_parser)
    publish_parser.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait for a running refresh"
    )
    publish_parser.set_defaults(func=cmd_publish)

    snapshots_parser = commands.add_parser(
        "snapshots", help="the snapshots' history (plans, price list, cost assumptions)"
    )
    snapshot_actions = snapshots_parser.add_subparsers(dest="action", required=True)
    repair_parser = snapshot_actions.add_parser(
        "repair",
        help="remove snapshot versions captured by runs that never published",
        description="Earlier versions of pmcost wrote each build's snapshot versions straight "
        "into the published snapshots, so a failed refresh left its versions there and could "
        "fail every later one. This removes, per snapshot, the versions that no published run "
        "used (by the publication record) and leaves every other version alone. A refresh "
        "does the same to its own copy by itself; run this to repair the published tables now.",
    )
    _add_target(repair_parser)
    repair_parser.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait for a running refresh"
    )
    repair_parser.set_defaults(func=cmd_snapshots_repair)

    dbt_parser = commands.add_parser(
        "dbt", help="run dbt with the target's connection set, e.g. `pmcost dbt -- test`"
    )
    _add_target(dbt_parser)
    dbt_parser.add_argument("--as-of", type=_iso_date, help="as-of date for this run")
    dbt_parser.add_argument(
        "--history-start",
        type=_iso_date,
        help="first day the daily models rebuild (a backfill; default: the lookback window)",
    )
    dbt_parser.add_argument("dbt_args", nargs=argparse.REMAINDER, help="arguments for dbt")
    dbt_parser.set_defaults(func=cmd_dbt)

    docs = commands.add_parser("docs", help="generate and serve the dbt docs site (lineage)")
    _add_target(docs)
    docs.add_argument("--port", type=int, help="loopback port (default: a free one)")
    docs.add_argument("--no-generate", action="store_true", help="serve the last generated site")
    docs.set_defaults(func=cmd_docs)

    report_parser = commands.add_parser(
        "report",
        help="write the executive report (HTML) for the day, week or month ending on a day",
        description="A self-contained HTML report of the published tables: headline figures "
        "from the metrics layer with their change against the previous period, weekly trends, "
        "tenants by health status, the 10 best and worst tenants, the period's anomalies and "
        "the latest month's reconciliation. Written owner-only under $PMCOST_REPORT_DIR (else "
        "reports/), in a folder per day. `pmcost refresh` writes the day's (Mondays the "
        "week's, the 1st the month's) after each publish.",
    )
    _add_target(report_parser)
    report_parser.add_argument(
        "--as-of", type=_iso_date, help="the period's last day (default: the published marts' day)"
    )
    report_parser.add_argument(
        "--period", choices=report.PERIODS, default="day", help="day (default), week or month"
    )
    report_parser.add_argument(
        "--out", help="the report folder (default: $PMCOST_REPORT_DIR, else reports/)"
    )
    report_parser.set_defaults(func=cmd_report)

    bench_parser = commands.add_parser(
        "bench", help="benchmark on a throwaway server: speed, latency, memory, reliability"
    )
    bench_parser.add_argument(
        "--tenants",
        default="10000",
        help="tenants (default 10000); a comma list (e.g. 10000,100000) runs the scaling run: "
        "whole refresh, each model per 1,000 tenants, the limit, and the linearity guard",
    )
    bench_parser.add_argument(
        "--seconds", type=float, default=10.0, help="duration of each latency run (default 10)"
    )
    bench_parser.add_argument(
        "--target",
        default="embedded",
        help="where to measure: embedded (a throwaway embedded server, the default), postgres "
        "(a throwaway database on the server the PG* variables name, its settings untouched), "
        "or both: embedded,postgres",
    )
    bench_parser.add_argument(
        "--chaos", action="store_true", help="reliability run: readers during refresh, kill, races"
    )
    bench_parser.add_argument(
        "--no-history",
        action="store_true",
        help="scaling run without the daily models' full-history timing (about 35 minutes at "
        "1,000,000 tenants)",
    )
    bench_parser.set_defaults(func=cmd_bench)

    psql = commands.add_parser("psql", help="open the bundled psql on the embedded server")
    psql.add_argument("psql_args", nargs="*", help="arguments for psql, e.g. -c 'select 1'")
    psql.set_defaults(func=cmd_psql)

    for name, what in (("invoices", "provider invoice lines"), ("ledger", "Finance ledger totals")):
        finance_parser = commands.add_parser(name, help=f"Finance's {what}")
        actions = finance_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        load_parser = actions.add_parser(
            "load",
            help=f"validate FILE.csv whole and load its {what} (all or nothing; replaces whole "
            + ("invoices" if name == "invoices" else "months")
            + ", so loading the same file twice changes nothing)",
        )
        load_parser.add_argument("file", type=Path, help="UTF-8 CSV with a header row")
        _add_target(load_parser)
        load_parser.set_defaults(func=cmd_finance_load)

    build = commands.add_parser(
        "build", help="everything on the embedded server: demo data, pre-hook, dbt build, docs"
    )
    build.add_argument(
        "--app-schema",
        default=DEFAULT_APP_SCHEMA,
        help="schema of the application tables (default: public)",
    )
    _add_demo_options(build)
    build.add_argument("--as-of", type=_iso_date, help="as-of date (default today)")
    build.add_argument(
        "--history-days",
        type=int,
        default=DEMO_HISTORY_DAYS,
        help=f"days of daily history to publish, the as-of day included "
        f"(default {DEMO_HISTORY_DAYS})",
    )
    build.set_defaults(func=cmd_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["psql"] and not {"-h", "--help"} & set(argv[1:2]):
        # everything after `psql` is psql's own (argparse would reorder options like -c)
        args = parser.parse_args(["psql"])
        args.psql_args = argv[1:]
    else:
        args = parser.parse_args(argv)
    # `env` and `psql` print data for a shell or a person, not log messages
    if args.command not in ("env", "psql") and logs.wanted(args.log_format):
        logs.use_json()
    try:
        return int(args.func(args))
    except PmcostError as error:
        if args.debug:
            traceback.print_exc()
        print(f"pmcost: error: {error}", file=sys.stderr)
        return error.exit_code
    except psycopg.Error as error:
        if args.debug:
            traceback.print_exc()
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"pmcost: database error: {first} (rerun with --debug for details)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pmcost: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
