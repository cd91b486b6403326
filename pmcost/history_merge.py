"""A long published history of the daily fact is merged, not copied: a daily run's cost does
not grow with the history.

When the published fact holds more days outside the run's window than the run writes and
reads (`prepare_candidate` in macros/publication.sql decides, and names the table in the
candidate's publication request), a build carries into the candidate only the published days
it reads and does not write (the anomalies' trailing days), and writes its own window of
days (history start to as-of date). The publish, in the transaction that switches the
schemas:

1. deletes the run's days from the published table and inserts the candidate's;
2. drops the candidate's partial table and moves the published one into the candidate
   schema in its place (`alter table ... set schema`, an exclusive lock on the fact for the
   rest of the transaction: taken in short attempts so readers queue for a moment at most);
3. gives it the candidate's row-level security policies (theirs call the candidate
   schema's `current_tenant_id()`, which is published with it).

Then the schemas are switched as before. The work is proportional to the run's days, not to
the history. When the published table's shape (columns, constraints, indexes, grants, RLS)
is not the candidate's, e.g. after a rule was added to the model, the published days the
candidate lacks are copied into it instead, as every daily run used to do, and the
candidate's table is switched in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg import errors, sql

from pmcost import ddl
from pmcost.errors import PmcostError

# Each attempt at the fact's exclusive lock waits a little longer than deadlock_timeout:
# PostgreSQL cancels an autovacuum of the table once a lock request has waited that long
# (after a merge autovacuum may well be visiting it), and a reader queues at most this long.
LOCK_ATTEMPT_BEYOND_DEADLOCK_TIMEOUT_MS = 250
LOCK_PAUSE_SECONDS = 0.5  # between attempts, while a reader holds the fact
POLICY_COMMANDS = {"r": "select", "a": "insert", "w": "update", "d": "delete", "*": "all"}


@dataclass(frozen=True)
class Merge:
    """A published table whose candidate holds only `first`..`last` (the run's window) and the
    carried days from `carried_from` before it."""

    table: str
    column: str
    first: date
    last: date
    carried_from: date

    @classmethod
    def from_request(cls, entry: dict[str, object]) -> Merge:
        return cls(
            table=str(entry["table"]),
            column=str(entry["column"]),
            first=date.fromisoformat(str(entry["from"])),
            last=date.fromisoformat(str(entry["to"])),
            carried_from=date.fromisoformat(str(entry["carried_from"])),
        )


@dataclass(frozen=True)
class Shape:
    """What must be equal for the published table to stand in for the candidate's."""

    columns: list[tuple[str, str, bool]]
    constraints: list[tuple[str, str]]
    indexes: list[str]
    privileges: list[str]
    row_security: tuple[bool, bool]


def _oid(conn: psycopg.Connection, schema: str, table: str) -> int | None:
    row = conn.execute(
        """
        select c.oid from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = %s and c.relkind = 'r'
        """,
        (schema, table),
    ).fetchone()
    return int(row[0]) if row else None


def shape(conn: psycopg.Connection, oid: int) -> Shape:
    columns = conn.execute(
        """
        select attname::text, format_type(atttypid, atttypmod), attnotnull from pg_attribute
        where attrelid = %s and attnum > 0 and not attisdropped order by attnum
        """,
        (oid,),
    ).fetchall()
    # names aside (PostgreSQL names an unnamed CHECK by how it was added), and NOT VALID
    # aside (the carried rows are not checked again)
    constraints = conn.execute(
        """
        select contype::text, regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '')
        from pg_constraint where conrelid = %s order by 1, 2
        """,
        (oid,),
    ).fetchall()
    indexes = conn.execute(
        """
        select regexp_replace(pg_get_indexdef(indexrelid), ' INDEX \\S+ ON \\S+ ', ' INDEX ON ')
        from pg_index where indrelid = %s order by 1
        """,
        (oid,),
    ).fetchall()
    privileges = conn.execute(
        """
        select format('%%s %%s %%s', case when g.grantee = 0 then 'public'
                                         else pg_get_userbyid(g.grantee) end,
                      g.privilege_type, g.is_grantable)
        from pg_class as c,
             aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) as g
        where c.oid = %s order by 1
        """,
        (oid,),
    ).fetchall()
    security = conn.execute(
        "select relrowsecurity, relforcerowsecurity from pg_class where oid = %s", (oid,)
    ).fetchone()
    return Shape(
        columns=[(str(a), str(b), bool(c)) for a, b, c in columns],
        constraints=[(str(a), str(b)) for a, b in constraints],
        indexes=[str(row[0]) for row in indexes],
        privileges=[str(row[0]) for row in privileges],
        row_security=(bool(security[0]), bool(security[1])) if security else (False, False),
    )


def merged_row_count(
    conn: psycopg.Connection, candidate_schema: str, published_schema: str, merge: Merge
) -> int:
    """Rows the published table will hold: its days outside the run's window, the
    candidate's inside it (or the candidate's alone when nothing is published)."""
    column = sql.Identifier(merge.column)
    inside = conn.execute(
        sql.SQL("select count(*) from {} where {} between %s and %s").format(
            sql.Identifier(candidate_schema, merge.table), column
        ),
        (merge.first, merge.last),
    ).fetchone()
    if _oid(conn, published_schema, merge.table) is None:
        return int(inside[0] if inside else 0)
    outside = conn.execute(
        sql.SQL("select count(*) from {} where not ({} between %s and %s)").format(
            sql.Identifier(published_schema, merge.table), column
        ),
        (merge.first, merge.last),
    ).fetchone()
    return int(inside[0] if inside else 0) + int(outside[0] if outside else 0)


def _columns(shape_: Shape) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(name) for name, _, _ in shape_.columns)


def _lock_for_move(conn: psycopg.Connection, schema: str, table: str, timeout_ms: int) -> None:
    """ACCESS EXCLUSIVE on the published table, asked for in short attempts: while one
    waits, new readers queue behind it, so none waits longer than an attempt."""
    relation = sql.Identifier(schema, table)
    row = conn.execute(
        "select setting::int from pg_settings where name = 'deadlock_timeout'"
    ).fetchone()
    attempt_ms = (int(row[0]) if row else 1000) + LOCK_ATTEMPT_BEYOND_DEADLOCK_TIMEOUT_MS
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            with conn.transaction():  # a savepoint: a failed attempt leaves the rest intact
                conn.execute(
                    sql.SQL("set local lock_timeout = {}").format(sql.Literal(f"{attempt_ms}ms"))
                )
                conn.execute(sql.SQL("lock table {} in access exclusive mode").format(relation))
            break
        except errors.LockNotAvailable:
            if time.monotonic() >= deadline:
                raise PmcostError(
                    f"{schema}.{table} was held for over {timeout_ms} ms by "
                    f"{ddl.lock_holders(conn, schema, [table])}, so the run's days could not "
                    "be merged into it; nothing was published. Retry the refresh (or "
                    "`pmcost publish`, while the build is still the candidate)"
                ) from None
            time.sleep(LOCK_PAUSE_SECONDS)
    conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(f"{timeout_ms}ms")))


def _policies(conn: psycopg.Connection, oid: int) -> list[tuple]:
    return conn.execute(
        """
        select polname::text, polcmd::text, polpermissive,
               array(select case when role = 0 then 'public' else pg_get_userbyid(role) end
                     from unnest(polroles) as role order by 1),
               pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)
        from pg_policy where polrelid = %s order by polname
        """,
        (oid,),
    ).fetchall()


def _create_policy(conn: psycopg.Connection, table: sql.Composable, policy: tuple) -> None:
    name, command, permissive, roles, using, check = policy
    statement = sql.SQL("create policy {} on {} as {} for {} to {}").format(
        sql.Identifier(name),
        table,
        sql.SQL("permissive" if permissive else "restrictive"),
        sql.SQL(POLICY_COMMANDS[command]),
        sql.SQL(", ").join(
            sql.SQL("public") if role == "public" else sql.Identifier(role) for role in roles
        ),
    )
    # the expressions come from PostgreSQL's own catalog (pg_get_expr), not from input
    if using is not None:
        statement += sql.SQL(" using ({})").format(sql.SQL(using))
    if check is not None:
        statement += sql.SQL(" with check ({})").format(sql.SQL(check))
    conn.execute(statement)


def merge(
    conn: psycopg.Connection,
    candidate_schema: str,
    published_schema: str,
    merge_: Merge,
    *,
    lock_timeout_ms: int,
) -> str:
    """Inside the publish's transaction: leave in the candidate schema, under the table's
    name, the published table with the run's days merged in. Returns what was done."""
    candidate_oid = _oid(conn, candidate_schema, merge_.table)
    published_oid = _oid(conn, published_schema, merge_.table)
    if candidate_oid is None:
        raise PmcostError(
            f"{candidate_schema}.{merge_.table} is missing: the build did not finish; run it again"
        )
    if published_oid is None:  # dropped since the build: the candidate's days are all there is
        return f"{merge_.table}: nothing published to merge with; the candidate's days switched in"
    candidate = sql.Identifier(candidate_schema, merge_.table)
    published = sql.Identifier(published_schema, merge_.table)
    column = sql.Identifier(merge_.column)
    window = (merge_.first, merge_.last)
    candidate_shape = shape(conn, candidate_oid)
    if shape(conn, published_oid) != candidate_shape:
        return _copy_into_candidate(
            conn, candidate, published, candidate_oid, _columns(candidate_shape), merge_
        )

    conn.execute(
        sql.SQL("delete from {} where {} between %s and %s").format(published, column), window
    )
    inserted = conn.execute(
        sql.SQL("insert into {} ({}) select {} from {} where {} between %s and %s").format(
            published, _columns(candidate_shape), _columns(candidate_shape), candidate, column
        ),
        window,
    ).rowcount
    policies = _policies(conn, candidate_oid)
    conn.execute(sql.SQL("drop table {}").format(candidate))
    _lock_for_move(conn, published_schema, merge_.table, lock_timeout_ms)
    conn.execute(
        sql.SQL("alter table {} set schema {}").format(published, sql.Identifier(candidate_schema))
    )
    # its policies called the published schema's current_tenant_id(), which is retired with
    # that schema: the candidate's call the function published with the candidate
    for name, *_rest in _policies(conn, published_oid):
        conn.execute(sql.SQL("drop policy {} on {}").format(sql.Identifier(name), candidate))
    for policy in policies:
        _create_policy(conn, candidate, policy)
    days = (merge_.last - merge_.first).days + 1
    return (
        f"{merge_.table}: the run's {days} days ({inserted:,} rows) merged into the published table"
    )


def _copy_into_candidate(
    conn: psycopg.Connection,
    candidate: sql.Identifier,
    published: sql.Identifier,
    candidate_oid: int,
    columns: sql.Composable,
    merge_: Merge,
) -> str:
    """The shapes differ: complete the candidate's table with the published days it lacks.
    Its CHECK constraints are set aside for the copy and put back NOT VALID, as a carried
    copy gets them at the start of a build (the rows passed the rules of their own run)."""
    checks = conn.execute(
        """
        select conname::text, regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '')
        from pg_constraint where conrelid = %s and contype = 'c' order by conname
        """,
        (candidate_oid,),
    ).fetchall()
    for name, _definition in checks:
        conn.execute(
            sql.SQL("alter table {} drop constraint {}").format(candidate, sql.Identifier(name))
        )
    column = sql.Identifier(merge_.column)
    copied = conn.execute(
        sql.SQL("insert into {} ({}) select {} from {} where {} < %s or {} > %s").format(
            candidate, columns, columns, published, column, column
        ),
        (merge_.carried_from, merge_.last),
    ).rowcount
    for name, definition in checks:
        conn.execute(
            sql.SQL("alter table {} add constraint {} {} not valid").format(
                candidate, sql.Identifier(name), sql.SQL(definition)
            )
        )
    conn.execute(sql.SQL("analyze {}").format(candidate))
    return (
        f"{merge_.table}: the published table's shape differs from the build's (a rule, "
        f"index or grant changed); its other days ({copied:,} rows) copied into the build's"
    )
