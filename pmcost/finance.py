"""Finance's files: provider invoice lines and ledger totals, validated whole and loaded.

Both land in the Finance schema of the analytics database (`finance`, or
$PMCOST_FINANCE_SCHEMA; dbt reads it as the `finance` source). A file is read once, as a
stream: every line is validated and copied (COPY) into a temporary table; if any line is bad
the transaction is rolled back and every bad line is reported with its number and reason,
so nothing is ever half-loaded. Loading replaces whole invoices (provider + invoice id) and
whole ledger months, so the same file twice changes nothing and a corrected invoice replaces
its lines. Each load that changed something is recorded in `loads` (file name, SHA-256,
rows, time, who).
"""

from __future__ import annotations

import csv
import hashlib
import ipaddress
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

from pmcost.errors import PmcostError

Say = Callable[[str], None]

INVOICE_COLUMNS = (
    "provider",
    "invoice_id",
    "invoice_date",
    "period_start",
    "period_end",
    "resource_type",
    "resource_ref",
    "description",
    "amount",
    "currency",
)
LEDGER_COLUMNS = ("month", "category", "amount", "currency")
RESOURCE_TYPES = ("vps", "smtp_ip", "other")
CATEGORIES = ("vps", "smtp_ip", "shared_database", "other")
PROGRESS_EVERY = 100_000  # lines between progress messages

_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]{1,2})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")


def finance_schema() -> str:
    """The schema Finance's tables live in: $PMCOST_FINANCE_SCHEMA, else `finance`."""
    return os.environ.get("PMCOST_FINANCE_SCHEMA", "finance")


class LoadRejected(PmcostError):
    """A file with bad lines: nothing of it was loaded."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(
            f"{path.name}: rejected, nothing was loaded ({len(problems)} bad line(s)); fix the "
            "file and load it again:\n  " + "\n  ".join(problems)
        )
        self.problems = problems


@dataclass(frozen=True)
class LoadResult:
    kind: str
    file_name: str
    checksum: str
    rows: int
    keys: int  # invoices or ledger months in the file
    replaced_rows: int  # rows of those invoices / months that were there before
    changed: bool
    load_id: int | None

    def describe(self) -> str:
        what = "invoice(s)" if self.kind == "invoices" else "ledger month(s)"
        if not self.changed:
            return (
                f"{self.file_name}: {self.rows:,} line(s), {self.keys} {what}: already loaded "
                "exactly so, nothing changed"
            )
        return (
            f"{self.file_name}: loaded {self.rows:,} line(s), {self.keys} {what} "
            f"(replaced {self.replaced_rows:,} earlier line(s)); load id {self.load_id}, "
            f"sha256 {self.checksum[:12]}"
        )


@dataclass(frozen=True)
class _Kind:
    name: str
    columns: tuple[str, ...]
    table: str
    key: tuple[str, ...]  # what a file replaces: an invoice, a ledger month
    stage_columns: tuple[str, ...]  # as copied into the table (line_number included)


INVOICES = _Kind(
    name="invoices",
    columns=INVOICE_COLUMNS,
    table="invoice_lines",
    key=("provider", "invoice_id"),
    stage_columns=(*INVOICE_COLUMNS[:2], "line_number", *INVOICE_COLUMNS[2:]),
)
LEDGER = _Kind(
    name="ledger",
    columns=LEDGER_COLUMNS,
    table="ledger_entries",
    key=("ledger_month",),
    stage_columns=("ledger_month", "category", "line_number", "amount", "currency"),
)

DDL = """
create schema if not exists {schema};
create table if not exists {schema}.loads (
    load_id bigint generated always as identity primary key,
    kind text not null check (kind in ('invoices', 'ledger')),
    file_name text not null,
    checksum_sha256 text not null,
    row_count integer not null,
    loaded_at timestamptz not null default now(),
    loaded_by text not null default current_user
);
create table if not exists {schema}.invoice_lines (
    provider text not null,
    invoice_id text not null,
    line_number integer not null,
    invoice_date date not null,
    period_start date not null,
    period_end date not null,
    resource_type text not null check (resource_type in ('vps', 'smtp_ip', 'other')),
    resource_ref text,
    description text,
    amount numeric(14, 2) not null,
    currency text not null check (currency ~ '^[A-Z]{{3}}$'),
    load_id bigint not null references {schema}.loads (load_id),
    primary key (provider, invoice_id, line_number),
    check (period_end > period_start),
    check (resource_type = 'other' or resource_ref is not null)
);
create table if not exists {schema}.ledger_entries (
    ledger_month date not null check (extract(day from ledger_month) = 1),
    category text not null
        check (category in ('vps', 'smtp_ip', 'shared_database', 'other')),
    line_number integer not null,
    amount numeric(14, 2) not null,
    currency text not null check (currency ~ '^[A-Z]{{3}}$'),
    load_id bigint not null references {schema}.loads (load_id),
    primary key (ledger_month, category, currency)
);
comment on table {schema}.invoice_lines is
    'Provider invoice lines as Finance loaded them (pmcost invoices load). '
    'period_end is the last day the line covers.';
comment on table {schema}.ledger_entries is
    'Finance ledger totals per month and cost category (pmcost ledger load).';
comment on table {schema}.loads is
    'Every load that changed Finance''s tables: file, checksum, rows, when and by whom.';
"""


def ensure_tables(conn: psycopg.Connection, schema: str | None = None) -> None:
    """Create the Finance schema and its landing tables when missing; when they exist (every
    refresh), run nothing: they are never altered, and may belong to another role."""
    name = schema or finance_schema()
    found = conn.execute(
        "select count(*) from pg_tables where schemaname = %s and tablename = any(%s)",
        (name, [kind.table for kind in (INVOICES, LEDGER)] + ["loads"]),
    ).fetchone()
    if found is not None and found[0] == 3:
        return
    with conn.transaction():
        conn.execute(sql.SQL(DDL).format(schema=sql.Identifier(name)))


def _checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _iso_date(value: str, field: str) -> date:
    if not _DATE.fullmatch(value):
        raise ValueError(f"{field} {value!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field} {value!r} is not a calendar date") from None


def _amount(value: str) -> str:
    if not _AMOUNT.fullmatch(value):
        raise ValueError(
            f"amount {value!r} is not a number with a dot and at most 2 decimals (e.g. 14.99)"
        )
    return value


def _currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise ValueError(f"currency {value!r} is not a 3-letter ISO code in capitals (e.g. USD)")
    return value


def _invoice_row(fields: dict[str, str], line: int) -> tuple[object, ...]:
    problems: list[str] = []

    def check(parse: Callable[[], object]) -> object:
        try:
            return parse()
        except ValueError as error:
            problems.append(str(error))
            return None

    def required(name: str) -> str:
        if not fields[name]:
            raise ValueError(f"{name} is empty")
        return fields[name]

    provider = check(lambda: required("provider"))
    invoice_id = check(lambda: required("invoice_id"))
    invoice_date = check(lambda: _iso_date(fields["invoice_date"], "invoice_date"))
    start = check(lambda: _iso_date(fields["period_start"], "period_start"))
    end = check(lambda: _iso_date(fields["period_end"], "period_end"))
    if isinstance(start, date) and isinstance(end, date) and end <= start:
        problems.append(f"period_end {end} is not after period_start {start}")
    resource_type = fields["resource_type"].lower()
    if resource_type not in RESOURCE_TYPES:
        problems.append(
            f"resource_type {fields['resource_type']!r} is not one of {', '.join(RESOURCE_TYPES)}"
        )
    reference: str | None = fields["resource_ref"] or None
    if resource_type in ("vps", "smtp_ip") and reference is None:
        problems.append(f"resource_ref is empty (a {resource_type} line names its resource)")
    if resource_type == "smtp_ip" and reference is not None:
        try:
            reference = str(ipaddress.ip_address(reference))
        except ValueError:
            problems.append(f"resource_ref {reference!r} is not an IP address")
    amount = check(lambda: _amount(fields["amount"]))
    currency = check(lambda: _currency(fields["currency"]))
    if problems:
        raise ValueError("; ".join(problems))
    return (
        provider,
        invoice_id,
        line,
        invoice_date,
        start,
        end,
        resource_type,
        reference,
        fields["description"] or None,
        amount,
        currency,
    )


def _ledger_row(fields: dict[str, str], line: int) -> tuple[object, ...]:
    problems: list[str] = []
    month: date | None = None
    if not _MONTH.fullmatch(fields["month"]):
        problems.append(f"month {fields['month']!r} is not YYYY-MM")
    else:
        try:
            month = date.fromisoformat(fields["month"] + "-01")
        except ValueError:
            problems.append(f"month {fields['month']!r} is not a calendar month")
    category = fields["category"].lower()
    if category not in CATEGORIES:
        problems.append(f"category {fields['category']!r} is not one of {', '.join(CATEGORIES)}")
    amount = currency = None
    try:
        amount = _amount(fields["amount"])
    except ValueError as error:
        problems.append(str(error))
    try:
        currency = _currency(fields["currency"])
    except ValueError as error:
        problems.append(str(error))
    if problems:
        raise ValueError("; ".join(problems))
    return (month, category, line, amount, currency)


def _lines(path: Path, kind: _Kind, problems: list[str]) -> Iterator[tuple[object, ...]]:
    """The file's valid rows, streamed; bad lines go to `problems` as `line N: reason`."""
    parse = _invoice_row if kind is INVOICES else _ledger_row
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise PmcostError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except UnicodeDecodeError:
            problems.append("line 1: not UTF-8 text")
            return
        names = tuple(column.strip().lower() for column in header or ())
        if names != kind.columns:
            problems.append(
                f"line 1: the header must be {','.join(kind.columns)} (found {','.join(names)})"
            )
            return
        try:
            for fields in reader:
                line = reader.line_num
                if not fields or all(not value.strip() for value in fields):
                    continue  # a blank line
                if len(fields) != len(kind.columns):
                    problems.append(
                        f"line {line}: expected {len(kind.columns)} fields, found {len(fields)}"
                    )
                    continue
                values = dict(zip(kind.columns, (value.strip() for value in fields), strict=True))
                try:
                    yield parse(values, line)
                except ValueError as error:
                    problems.append(f"line {line}: {error}")
        except UnicodeDecodeError:
            problems.append(f"line {reader.line_num + 1}: not UTF-8 text")
        except csv.Error as error:
            problems.append(f"line {reader.line_num}: {error}")


def _stage_table(kind: _Kind, schema: str) -> sql.Composed:
    return sql.SQL(
        "create temporary table incoming (like {table} including defaults) on commit drop"
    ).format(table=sql.Identifier(schema, kind.table))


def _cross_line_problems(conn: psycopg.Connection, kind: _Kind) -> list[str]:
    """Rules across lines: an invoice has one date; a ledger month has one row per category
    and currency."""
    if kind is INVOICES:
        rows = conn.execute(
            "select provider, invoice_id, string_agg(line_number::text, ', ' order by line_number)"
            " from incoming group by provider, invoice_id"
            " having count(distinct invoice_date) > 1"
        ).fetchall()
        return [
            f"lines {lines}: invoice {invoice} of {provider} has more than one invoice_date"
            for provider, invoice, lines in rows
        ]
    rows = conn.execute(
        "select to_char(ledger_month, 'YYYY-MM'), category, currency,"
        " string_agg(line_number::text, ', ' order by line_number)"
        " from incoming group by ledger_month, category, currency having count(*) > 1"
    ).fetchall()
    return [
        f"lines {lines}: {month} {category} {currency} appears more than once (one total each)"
        for month, category, currency, lines in rows
    ]


def load(
    conn: psycopg.Connection,
    path: Path,
    kind: _Kind,
    *,
    schema: str | None = None,
    say: Say = print,
) -> LoadResult:
    """Validate the whole file and replace its invoices (or ledger months), atomically."""
    name = schema or finance_schema()
    ensure_tables(conn, name)
    checksum = _checksum(path)
    table = sql.Identifier(name, kind.table)
    columns = sql.SQL(", ").join(map(sql.Identifier, kind.stage_columns))
    key = sql.SQL(", ").join(map(sql.Identifier, kind.key))
    problems: list[str] = []
    rows = 0
    with conn.transaction():
        conn.execute(_stage_table(kind, name))
        conn.execute("alter table incoming drop column load_id")
        with conn.cursor().copy(sql.SQL("copy incoming ({}) from stdin").format(columns)) as copy:
            for row in _lines(path, kind, problems):
                copy.write_row(row)
                rows += 1
                if rows % PROGRESS_EVERY == 0:
                    say(f"  {path.name}: {rows:,} lines read")
        if not problems and rows == 0:
            problems.append("the file has a header but no lines")
        if not problems:
            problems.extend(_cross_line_problems(conn, kind))
        if problems:
            raise LoadRejected(path, problems)
        keys = conn.execute(
            sql.SQL("select count(*) from (select distinct {} from incoming) as keys").format(key)
        ).fetchone()
        replaced = conn.execute(
            sql.SQL("select count(*) from {} where ({}) in (select {} from incoming)").format(
                table, key, key
            )
        ).fetchone()
        value_columns = sql.SQL(", ").join(
            sql.Identifier(column) for column in kind.stage_columns if column != "line_number"
        )
        difference = conn.execute(
            sql.SQL(
                "select count(*) from ("
                "(select {values} from incoming except all"
                " select {values} from {table} where ({key}) in (select {key} from incoming))"
                " union all "
                "(select {values} from {table} where ({key}) in (select {key} from incoming)"
                " except all select {values} from incoming)) as changes"
            ).format(values=value_columns, table=table, key=key)
        ).fetchone()
        assert keys is not None and replaced is not None and difference is not None
        if difference[0] == 0:
            return LoadResult(kind.name, path.name, checksum, rows, keys[0], 0, False, None)
        load_row = conn.execute(
            sql.SQL(
                "insert into {} (kind, file_name, checksum_sha256, row_count)"
                " values (%s, %s, %s, %s) returning load_id"
            ).format(sql.Identifier(name, "loads")),
            (kind.name, path.name, checksum, rows),
        ).fetchone()
        assert load_row is not None
        conn.execute(
            sql.SQL("delete from {} where ({}) in (select {} from incoming)").format(
                table, key, key
            )
        )
        conn.execute(
            sql.SQL("insert into {} ({}, load_id) select {}, %s from incoming").format(
                table, columns, columns
            ),
            (load_row[0],),
        )
    conn.execute(sql.SQL("analyze {}").format(table))
    return LoadResult(kind.name, path.name, checksum, rows, keys[0], replaced[0], True, load_row[0])


def load_invoices(
    conn: psycopg.Connection, path: Path, *, schema: str | None = None, say: Say = print
) -> LoadResult:
    return load(conn, path, INVOICES, schema=schema, say=say)


def load_ledger(
    conn: psycopg.Connection, path: Path, *, schema: str | None = None, say: Say = print
) -> LoadResult:
    return load(conn, path, LEDGER, schema=schema, say=say)
