"""The column DDL pre-hook: `approximate_cost` columns, comments, checks and partial indexes.

The target state is declared once, as data (`TARGET`). `plan`, `apply`, `verify` and
`rollback` all derive from it and from what the catalog holds right now, so a second run finds
nothing to do. Apply is written for a live application database:

* every statement runs with a short `lock_timeout` and is retried with backoff, so the
  application's writes never queue behind it for longer than that timeout;
* CHECK constraints are added `NOT VALID` (instant) and validated in their own transaction
  (which does not block writes);
* indexes are built `CONCURRENTLY`; an INVALID leftover of an interrupted build is dropped and
  rebuilt;
* runs are serialised by a session-level advisory lock, taken by polling so that a waiting run
  holds no snapshot that a concurrent index build would have to wait for;
* something that exists under a target name but differs from the target (another column type,
  another constraint definition) is reported and left alone, never altered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import errors, sql

from pmcost import finance
from pmcost.errors import BusyError, PmcostError

ADVISORY_LOCK = (1886221, 1)  # (pmcost, ddl); pmcost.refresh uses (1886221, 2)

VPS_COMMENT = (
    "Estimated monthly cost in USD for this Hostwinds VPS instance, derived from Hostwinds "
    "pricing APIs\n(get_price_list, get_billingcycle_prices, upgrade_instance) using the active "
    "plan/specs and billing cycle.\nPrimary intent: track Hostwinds-related infrastructure spend "
    "per instance for internal ROI/margin analysis.\nNot authoritative customer billing; final "
    "invoices remain in Finance systems."
)
SMTP_COMMENT = (
    "Internally maintained estimated monthly cost in USD per SMTP IP address used for "
    "deliverability and cost-efficiency analysis.\nNot authoritative billing; values are "
    "modeled/allocated by Finance & Operations."
)


@dataclass(frozen=True)
class ColumnTarget:
    table: str
    column: str
    type_sql: str  # as format_type() prints it
    default_sql: str  # as pg_get_expr() prints it
    comment: str


@dataclass(frozen=True)
class CheckTarget:
    table: str
    name: str
    expression: str
    catalog_definition: str  # as pg_get_constraintdef() prints it


@dataclass(frozen=True)
class IndexTarget:
    table: str
    name: str
    column: str
    predicate: str
    catalog_predicate: str  # as pg_get_expr(indpred) prints it


@dataclass(frozen=True)
class TargetState:
    columns: tuple[ColumnTarget, ...]
    checks: tuple[CheckTarget, ...]
    indexes: tuple[IndexTarget, ...]

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(column.table for column in self.columns))


TARGET = TargetState(
    columns=(
        ColumnTarget("vps_instances", "approximate_cost", "numeric(8,2)", "0.00", VPS_COMMENT),
        ColumnTarget("smtp_ip_addresses", "approximate_cost", "numeric(6,2)", "0.00", SMTP_COMMENT),
    ),
    checks=(
        CheckTarget(
            "vps_instances",
            "chk_vps_approximate_cost_positive",
            "approximate_cost >= 0",
            "CHECK ((approximate_cost >= (0)::numeric))",
        ),
        CheckTarget(
            "smtp_ip_addresses",
            "chk_smtp_approximate_cost_positive",
            "approximate_cost >= 0",
            "CHECK ((approximate_cost >= (0)::numeric))",
        ),
    ),
    indexes=(
        IndexTarget(
            "vps_instances",
            "idx_vps_instances_approximate_cost",
            "approximate_cost",
            "status = 'active'",
            "(status = 'active'::text)",
        ),
        IndexTarget(
            "smtp_ip_addresses",
            "idx_smtp_ip_addresses_approximate_cost",
            "approximate_cost",
            "status in ('active', 'warmed', 'warming')",
            "(status = ANY (ARRAY['active'::text, 'warmed'::text, 'warming'::text]))",
        ),
    ),
)


@dataclass(frozen=True)
class Step:
    """One statement of a plan. `transactional=False` for CONCURRENTLY statements."""

    description: str
    statement: sql.Composable
    table: str
    transactional: bool = True


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


@dataclass
class ApplyResult:
    applied: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.failures


# -- catalog -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnState:
    type_sql: str
    not_null: bool
    default_sql: str | None
    comment: str | None


@dataclass(frozen=True)
class ConstraintState:
    definition: str
    validated: bool


@dataclass(frozen=True)
class IndexState:
    table: str
    valid: bool
    column: str | None
    predicate: str | None


def _qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def missing_tables(conn: psycopg.Connection, schema: str) -> list[str]:
    found = {
        row[0]
        for row in conn.execute(
            """
            select c.relname from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p')
            """,
            (schema, list(TARGET.tables)),
        )
    }
    return [table for table in TARGET.tables if table not in found]


def _column_state(
    conn: psycopg.Connection, schema: str, target: ColumnTarget
) -> ColumnState | None:
    row = conn.execute(
        """
        select format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), col_description(a.attrelid, a.attnum)
        from pg_attribute as a
        join pg_class as c on c.oid = a.attrelid
        join pg_namespace as n on n.oid = c.relnamespace
        left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = %s and c.relname = %s and a.attname = %s and not a.attisdropped
        """,
        (schema, target.table, target.column),
    ).fetchone()
    if row is None:
        return None
    return ColumnState(str(row[0]), bool(row[1]), row[2], row[3])


def _constraint_state(
    conn: psycopg.Connection, schema: str, target: CheckTarget
) -> ConstraintState | None:
    row = conn.execute(
        """
        select pg_get_constraintdef(k.oid), k.convalidated
        from pg_constraint as k
        join pg_class as c on c.oid = k.conrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = %s and k.conname = %s
        """,
        (schema, target.table, target.name),
    ).fetchone()
    if row is None:
        return None
    # pg_get_constraintdef() appends " NOT VALID" until validation; that is state, not definition
    return ConstraintState(str(row[0]).removesuffix(" NOT VALID"), bool(row[1]))


def _index_state(conn: psycopg.Connection, schema: str, name: str) -> IndexState | None:
    row = conn.execute(
        """
        select t.relname, x.indisvalid and x.indisready,
               case when x.indnatts = 1 then pg_get_indexdef(x.indexrelid, 1, true) end,
               pg_get_expr(x.indpred, x.indrelid)
        from pg_index as x
        join pg_class as i on i.oid = x.indexrelid
        join pg_class as t on t.oid = x.indrelid
        join pg_namespace as n on n.oid = i.relnamespace
        where n.nspname = %s and i.relname = %s
        """,
        (schema, name),
    ).fetchone()
    return None if row is None else IndexState(str(row[0]), bool(row[1]), row[2], row[3])


# -- plan ----------------------------------------------------------------------------------------
def plan(conn: psycopg.Connection, schema: str, target: TargetState = TARGET) -> Plan:
    """What apply would do now: the statements, and what it will leave alone and why."""
    missing = missing_tables(conn, schema)
    if missing:
        raise PmcostError(
            f"table {schema}.{missing[0]} not found; the pre-hook needs the application tables "
            "(set --app-schema, or load demo data with `pmcost demo-data`)"
        )
    result = Plan()
    column_ok: dict[str, bool] = {}
    for column in target.columns:
        table = _qualified(schema, column.table)
        where = f"{schema}.{column.table}.{column.column}"
        state = _column_state(conn, schema, column)
        if state is None:
            result.steps.append(
                Step(
                    f"add column {where} {column.type_sql} default {column.default_sql}",
                    sql.SQL("alter table {} add column if not exists {} {} default {}").format(
                        table,
                        sql.Identifier(column.column),
                        sql.SQL(column.type_sql),
                        sql.SQL(column.default_sql),
                    ),
                    column.table,
                )
            )
            state = ColumnState(column.type_sql, False, column.default_sql, None)
        elif state.type_sql != column.type_sql:
            result.conflicts.append(
                f"{where} exists as {state.type_sql}, not {column.type_sql}; left alone: "
                "change its type by hand (after checking Finance's values) or rename it"
            )
            column_ok[column.table] = False
            continue
        if state.not_null:
            result.conflicts.append(
                f"{where} is NOT NULL; the target allows NULL; left alone: drop the NOT NULL "
                "by hand if the application does not rely on it"
            )
        if state.default_sql != column.default_sql:
            result.steps.append(
                Step(
                    f"set default {column.default_sql} on {where} (was {state.default_sql})",
                    sql.SQL("alter table {} alter column {} set default {}").format(
                        table, sql.Identifier(column.column), sql.SQL(column.default_sql)
                    ),
                    column.table,
                )
            )
        if state.comment != column.comment:
            result.steps.append(
                Step(
                    f"comment on column {where}",
                    sql.SQL("comment on column {}.{} is {}").format(
                        table, sql.Identifier(column.column), sql.Literal(column.comment)
                    ),
                    column.table,
                )
            )
        column_ok[column.table] = True

    for check in target.checks:
        if not column_ok.get(check.table, False):
            continue
        table = _qualified(schema, check.table)
        constraint = _constraint_state(conn, schema, check)
        if constraint is None:
            result.steps.append(
                Step(
                    f"add constraint {check.name} on {schema}.{check.table} (not valid)",
                    sql.SQL("alter table {} add constraint {} check ({}) not valid").format(
                        table, sql.Identifier(check.name), sql.SQL(check.expression)
                    ),
                    check.table,
                )
            )
        elif constraint.definition != check.catalog_definition:
            result.conflicts.append(
                f"constraint {check.name} on {schema}.{check.table} is {constraint.definition!r}, "
                f"not {check.catalog_definition!r}; left alone: drop or rename it by hand"
            )
            continue
        if constraint is None or not constraint.validated:
            result.steps.append(
                Step(
                    f"validate constraint {check.name} on {schema}.{check.table}",
                    sql.SQL("alter table {} validate constraint {}").format(
                        table, sql.Identifier(check.name)
                    ),
                    check.table,
                )
            )

    for index in target.indexes:
        if not column_ok.get(index.table, False):
            continue
        existing = _index_state(conn, schema, index.name)
        name = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(index.name))
        if existing is not None and not existing.valid:
            result.steps.append(
                Step(
                    f"drop invalid index {schema}.{index.name} (left by an interrupted build)",
                    sql.SQL("drop index concurrently if exists {}").format(name),
                    index.table,
                    transactional=False,
                )
            )
        elif existing is not None:
            if (existing.table, existing.column, existing.predicate) != (
                index.table,
                index.column,
                index.catalog_predicate,
            ):
                result.conflicts.append(
                    f"index {schema}.{index.name} exists on {existing.table}({existing.column}) "
                    f"where {existing.predicate}; the target is {index.table}({index.column}) "
                    f"where {index.catalog_predicate}; left alone: drop it by hand to rebuild"
                )
            continue
        result.steps.append(
            Step(
                f"create index {schema}.{index.name} concurrently",
                sql.SQL("create index concurrently if not exists {} on {} ({}) where {}").format(
                    sql.Identifier(index.name),
                    _qualified(schema, index.table),
                    sql.Identifier(index.column),
                    sql.SQL(index.predicate),
                ),
                index.table,
                transactional=False,
            )
        )
    return result


def render(conn: psycopg.Connection, steps: list[Step]) -> list[str]:
    return [step.statement.as_string(conn) + ";" for step in steps]


# -- execution -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunOptions:
    lock_timeout_ms: int = 3000
    max_attempts: int = 20
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    wait_for_other_run_seconds: float = 600.0


Say = Callable[[str], None]


def lock_holders(conn: psycopg.Connection, schema: str, tables: list[str]) -> str:
    """Who holds locks on the tables: pid, state, application (or the kind of server
    process, e.g. an autovacuum worker), lock mode, transaction age."""
    rows = conn.execute(
        """
        select a.pid, coalesce(a.state, '?'),
               case when a.backend_type = 'client backend' then coalesce(a.application_name, '')
                    else a.backend_type end,
               string_agg(distinct l.mode, '+' order by l.mode),
               coalesce(round(extract(epoch from clock_timestamp() - a.xact_start))::int, 0)
        from pg_locks as l
        join pg_stat_activity as a on a.pid = l.pid
        join pg_class as c on c.oid = l.relation
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = any(%s) and l.pid <> pg_backend_pid()
          and l.granted
          -- relation oids are per database, and pg_locks lists the whole server's locks
          and l.database = (select oid from pg_database where datname = current_database())
        group by a.pid, a.state, a.application_name, a.backend_type, a.xact_start
        order by a.pid
        """,
        (schema, tables),
    ).fetchall()
    if not rows:
        return "a lock held by another session"
    return ", ".join(
        f"pid {pid} ({state}{', application ' + app if app else ''}, {modes}, "
        f"transaction open {age}s)"
        for pid, state, app, modes, age in rows
    )


def _execute(conn: psycopg.Connection, step: Step) -> None:
    if step.transactional:
        with conn.transaction():
            conn.execute(step.statement)
    else:
        conn.execute(step.statement)  # autocommit: CONCURRENTLY cannot run in a transaction


class AdvisoryLock:
    """Session-level advisory lock taken by polling (a waiting run holds no open snapshot)."""

    def __init__(
        self,
        conn: psycopg.Connection,
        key: tuple[int, int],
        what: str,
        wait_seconds: float,
        say: Say,
    ) -> None:
        self.conn, self.key, self.what, self.wait_seconds, self.say = (
            conn,
            key,
            what,
            wait_seconds,
            say,
        )

    def __enter__(self) -> AdvisoryLock:
        self.acquire()
        return self

    def acquire(self) -> None:
        """Take the lock, polling up to wait_seconds; raise BusyError naming the holder. It is
        held until __exit__ or until the session ends (a caller may rely on either)."""
        deadline = time.monotonic() + self.wait_seconds
        announced = False
        while True:
            row = self.conn.execute("select pg_try_advisory_lock(%s, %s)", self.key).fetchone()
            if row is not None and row[0]:
                return
            holder = self.conn.execute(
                "select pid from pg_locks where locktype = 'advisory' and classid = %s "
                "and objid = %s and granted and database = "
                "(select oid from pg_database where datname = current_database())",
                (self.key[0], self.key[1]),
            ).fetchone()
            if time.monotonic() >= deadline:
                raise BusyError(
                    f"another {self.what} (database session pid {holder[0] if holder else '?'}) "
                    "is still running "
                    f"after {self.wait_seconds:.0f}s; wait for it to finish, then run again"
                )
            if not announced:
                self.say(
                    f"waiting for another {self.what} "
                    f"(database session pid {holder[0] if holder else '?'})"
                )
                announced = True
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if not self.conn.closed:
            self.conn.execute("select pg_advisory_unlock(%s, %s)", self.key)


def _prepare(conn: psycopg.Connection, options: RunOptions) -> None:
    if not conn.autocommit:
        raise PmcostError("the pre-hook needs an autocommit connection")
    conn.execute(
        sql.SQL("set lock_timeout = {}").format(sql.Literal(f"{options.lock_timeout_ms}ms"))
    )
    conn.execute("set statement_timeout = 0")
    conn.execute("set application_name = 'pmcost ddl'")


def _negative_rows(conn: psycopg.Connection, schema: str, table: str) -> int:
    row = conn.execute(
        sql.SQL("select count(*) from {} where approximate_cost < 0").format(
            _qualified(schema, table)
        )
    ).fetchone()
    return int(row[0]) if row else 0


class _LockRetry:
    """Lock timeouts of one run: back off and retry, name the blockers, give up at the limit."""

    def __init__(self, conn: psycopg.Connection, schema: str, options: RunOptions, say: Say):
        self.conn, self.schema, self.options, self.say = conn, schema, options, say
        self.failures = 0

    def gave_up(self, description: str, tables: list[str], result: ApplyResult) -> bool:
        """Record one lock timeout; True (and a failure in result) when out of attempts."""
        self.failures += 1
        options = self.options
        blockers = lock_holders(self.conn, self.schema, tables)
        where = ", ".join(f"{self.schema}.{table}" for table in tables)
        if self.failures >= options.max_attempts:
            result.failures.append(
                f"{description}: gave up after {self.failures} lock timeouts of "
                f"{options.lock_timeout_ms} ms on {where}, blocked by {blockers}; run again "
                "when the application is quieter, or raise --lock-timeout-ms"
            )
            return True
        pause = min(
            options.max_backoff_seconds,
            options.backoff_seconds * 2 ** min(self.failures - 1, 10),
        )
        self.say(
            f"  waiting: {description} timed out after {options.lock_timeout_ms} ms on "
            f"{where}, held by {blockers}; retry {self.failures}/{options.max_attempts - 1} "
            f"in {pause:.1f}s"
        )
        time.sleep(pause)
        return False


def _run_steps(
    conn: psycopg.Connection,
    schema: str,
    options: RunOptions,
    say: Say,
    next_plan: Callable[[], Plan],
    result: ApplyResult,
    tables: list[str],
) -> None:
    """Run the first step of a fresh plan until the plan is empty; re-plan after every step.

    Planning reads the catalog (pg_get_expr opens the tables), so it too can meet a lock:
    every statement, planning included, goes through the same retry with backoff."""
    failed: set[str] = set()
    retry = _LockRetry(conn, schema, options, say)
    budget = 8 * len(tables) + 8  # steps per table are few; a plan that keeps growing is a bug
    while budget > 0:
        try:
            current = next_plan()
        except errors.LockNotAvailable:
            if retry.gave_up("reading the catalog to plan", tables, result):
                return
            continue
        budget -= 1
        result.conflicts = current.conflicts
        pending = [step for step in current.steps if step.description not in failed]
        if not pending:
            return
        step = pending[0]
        try:
            _execute(conn, step)
        except errors.LockNotAvailable:
            budget += 1
            if retry.gave_up(step.description, [step.table], result):
                failed.add(step.description)
            continue
        except errors.CheckViolation:
            count = _negative_rows(conn, schema, step.table)
            result.failures.append(
                f"{step.description}: {count} row(s) of {schema}.{step.table} have a negative "
                "approximate_cost; set them to a value >= 0 (e.g. 0.00) and run "
                "`pmcost ddl apply` again (the NOT VALID constraint already rejects new ones)"
            )
            failed.add(step.description)
            continue
        except psycopg.Error as error:
            message = str(error).strip().splitlines()[0]
            result.failures.append(f"{step.description}: {message}")
            failed.add(step.description)
            continue
        result.applied.append(step.description)
        say(f"  done: {step.description}")
    result.failures.append("the plan did not converge; run `pmcost ddl verify` and report it")


def apply(
    conn: psycopg.Connection,
    schema: str,
    *,
    options: RunOptions | None = None,
    say: Say = print,
    target: TargetState = TARGET,
) -> ApplyResult:
    """Bring the application tables to the target state; safe to run again and concurrently.
    Also creates Finance's empty landing tables when missing (the `finance` source dbt reads;
    pmcost.finance owns them), so a pre-hook run is all a fresh database needs before dbt."""
    options = options or RunOptions()
    _prepare(conn, options)
    result = ApplyResult()
    with AdvisoryLock(
        conn, ADVISORY_LOCK, "pmcost ddl run", options.wait_for_other_run_seconds, say
    ):
        _run_steps(
            conn,
            schema,
            options,
            say,
            lambda: plan(conn, schema, target),
            result,
            list(target.tables),
        )
    finance.ensure_tables(conn)
    return result


def rollback_steps(
    conn: psycopg.Connection, schema: str, *, drop_columns: bool, target: TargetState = TARGET
) -> list[Step]:
    """The guide's rollback, for what exists now: indexes, constraints, and columns if asked."""
    steps: list[Step] = []
    for index in target.indexes:
        if _index_state(conn, schema, index.name) is not None:
            steps.append(
                Step(
                    f"drop index {schema}.{index.name}",
                    sql.SQL("drop index concurrently if exists {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(index.name)
                    ),
                    index.table,
                    transactional=False,
                )
            )
    for check in target.checks:
        if _constraint_state(conn, schema, check) is not None:
            steps.append(
                Step(
                    f"drop constraint {check.name} on {schema}.{check.table}",
                    sql.SQL("alter table {} drop constraint if exists {}").format(
                        _qualified(schema, check.table), sql.Identifier(check.name)
                    ),
                    check.table,
                )
            )
    if drop_columns:
        for column in target.columns:
            if _column_state(conn, schema, column) is not None:
                steps.append(
                    Step(
                        f"drop column {schema}.{column.table}.{column.column} "
                        "(destroys its values)",
                        sql.SQL("alter table {} drop column if exists {}").format(
                            _qualified(schema, column.table), sql.Identifier(column.column)
                        ),
                        column.table,
                    )
                )
    return steps


def rollback(
    conn: psycopg.Connection,
    schema: str,
    *,
    drop_columns: bool,
    options: RunOptions | None = None,
    say: Say = print,
    target: TargetState = TARGET,
) -> ApplyResult:
    options = options or RunOptions()
    _prepare(conn, options)
    result = ApplyResult()
    with AdvisoryLock(
        conn, ADVISORY_LOCK, "pmcost ddl run", options.wait_for_other_run_seconds, say
    ):
        _run_steps(
            conn,
            schema,
            options,
            say,
            lambda: Plan(rollback_steps(conn, schema, drop_columns=drop_columns, target=target)),
            result,
            list(target.tables),
        )
    return result


# -- verification ----------------------------------------------------------------------------------
GUIDE_VERIFICATION_QUERY = """
select table_name, column_name, data_type, numeric_precision, numeric_scale,
       is_nullable, column_default
from information_schema.columns
where table_schema = %s
  and table_name in ('vps_instances', 'smtp_ip_addresses')
  and column_name = 'approximate_cost'
order by table_name
"""


def verify(conn: psycopg.Connection, schema: str, target: TargetState = TARGET) -> list[str]:
    """Differences between the catalog and the target state; empty when everything is in place."""
    missing = missing_tables(conn, schema)
    if missing:
        return [f"table {schema}.{table} is missing" for table in missing]
    diffs: list[str] = []
    for column in target.columns:
        where = f"{schema}.{column.table}.{column.column}"
        state = _column_state(conn, schema, column)
        if state is None:
            diffs.append(f"{where}: missing (run `pmcost ddl apply`)")
            continue
        expected = (column.type_sql, False, column.default_sql, column.comment)
        found = (state.type_sql, state.not_null, state.default_sql, state.comment)
        for label, want, have in zip(
            ("type", "not null", "default", "comment"), expected, found, strict=True
        ):
            if want != have:
                diffs.append(f"{where} {label}: expected {want!r}, found {have!r}")
    for check in target.checks:
        constraint = _constraint_state(conn, schema, check)
        where = f"constraint {check.name} on {schema}.{check.table}"
        if constraint is None:
            diffs.append(f"{where}: missing")
        elif constraint.definition != check.catalog_definition:
            diffs.append(
                f"{where}: expected {check.catalog_definition!r}, found {constraint.definition!r}"
            )
        elif not constraint.validated:
            diffs.append(f"{where}: not validated (existing rows unchecked)")
    for index in target.indexes:
        existing = _index_state(conn, schema, index.name)
        where = f"index {schema}.{index.name}"
        if existing is None:
            diffs.append(f"{where}: missing")
            continue
        if not existing.valid:
            diffs.append(f"{where}: INVALID (an interrupted build); `pmcost ddl apply` rebuilds it")
        if (existing.table, existing.column, existing.predicate) != (
            index.table,
            index.column,
            index.catalog_predicate,
        ):
            diffs.append(
                f"{where}: expected {index.table}({index.column}) where "
                f"{index.catalog_predicate}, found {existing.table}({existing.column}) "
                f"where {existing.predicate}"
            )
    return diffs


def guide_verification(conn: psycopg.Connection, schema: str) -> list[tuple[object, ...]]:
    return list(conn.execute(GUIDE_VERIFICATION_QUERY, (schema,)).fetchall())
