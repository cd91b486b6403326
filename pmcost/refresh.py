"""The scheduled refresh: pre-hook, `dbt build`, `dbt docs generate`; one at a time."""

from __future__ import annotations

from datetime import date

from pmcost import db, ddl
from pmcost import dbt as dbt_runner
from pmcost.errors import PmcostError
from pmcost.settings import Target

REFRESH_LOCK = (1886221, 2)  # (pmcost, refresh); see pmcost.ddl.ADVISORY_LOCK


def refresh(
    target: Target,
    *,
    as_of: date | None = None,
    history_start: date | None = None,
    full_refresh: bool = False,
    wait_seconds: float = 0.0,
    ddl_options: ddl.RunOptions | None = None,
    say: ddl.Say = print,
) -> None:
    """Raise PmcostError on any failure; return normally only when every step passed.

    The advisory lock lives on a connection held open (idle, outside any transaction) for the
    whole run, so a second refresh against the same database waits or exits clearly, and a
    killed refresh releases it with its connection.
    """
    with db.connection(target) as conn:
        lock = ddl.AdvisoryLock(conn, REFRESH_LOCK, "pmcost refresh", wait_seconds, say)
        with lock:
            say(f"pre-hook: column DDL on {target.app_schema} ({db.describe(conn.info.dsn)})")
            result = ddl.apply(conn, target.app_schema, options=ddl_options, say=say)
            for conflict in result.conflicts:
                say(f"  left alone: {conflict}")
            for failure in result.failures:
                say(f"  failed: {failure}")
            if not result.ok:
                raise PmcostError(
                    "the pre-hook did not reach its target state (see above); "
                    "fix it, then run `pmcost refresh` again"
                )
            if not result.applied:
                say("  nothing to do: columns, constraints and indexes already in place")
            build_args = ["build"] + (["--full-refresh"] if full_refresh else [])
            if dbt_runner.run(build_args, target, as_of=as_of, history_start=history_start) != 0:
                raise PmcostError(
                    "`dbt build` failed (see dbt's output above); the previous "
                    "marts stay in place for every model that did not rebuild"
                )
            if dbt_runner.run(["docs", "generate"], target, as_of=as_of) != 0:
                raise PmcostError("`dbt docs generate` failed (see dbt's output above)")
