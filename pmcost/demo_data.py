"""Deterministic demo data: the application's tables as they are *before* the cost migration.

The schema is the one SPEC.md gives (no `approximate_cost` columns, no foreign keys, as a
warehouse copy would be), filled through COPY so 10,000 tenants with about a million
billing_analytics rows load in seconds. The usage rows (about 100 per tenant) stream into their
COPY as they are generated, so memory stays bounded at any size; the other tables' rows (about
ten per tenant) are kept until the end. The same (tenants, seed, anchor date) always gives the
same rows. The data is deliberately messy: canceled and trialing subscriptions, terminated VPS,
retired IPs, a shared VPS pool with no tenant, unassigned IPs, failed and refunded payments,
tenants with two active subscriptions, tenants with no usage and statuses in odd case.

Load times are those of a copy taken at the start of the anchor day (midnight UTC), so none
lies in the future of a `make build` anchored today and `dbt source freshness` sees a feed that
is current: each day's usage row is written at 23:30 that day (the anchor day's first count at
midnight), payments when they were attempted, a subscription when its period last rolled over.
"""

from __future__ import annotations

import calendar
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
from psycopg import sql

from pmcost import access
from pmcost.errors import PmcostError, UsageError

DEMO_MARKER = "pmcost demo data"

# The application's tables, in load order: name -> column definitions.
APP_TABLES: dict[str, Sequence[tuple[str, str]]] = {
    "companies": (
        ("id", "uuid primary key"),
        ("name", "text"),
        ("created_at", "timestamptz default now()"),
        ("updated_at", "timestamptz default now()"),
    ),
    "plans": (
        ("id", "uuid primary key"),
        ("name", "text"),
        ("price_monthly", "numeric(10,2)"),
        ("currency", "char(3) default 'USD'"),
        ("created_at", "timestamptz default now()"),
        ("updated_at", "timestamptz default now()"),
    ),
    "subscriptions": (
        ("id", "uuid primary key"),
        ("tenant_id", "uuid"),
        ("plan_id", "uuid"),
        ("status", "text"),
        ("current_period_start", "date"),
        ("current_period_end", "date"),
        ("created_at", "timestamptz default now()"),
        ("updated_at", "timestamptz default now()"),
    ),
    "vps_instances": (
        ("id", "uuid primary key"),
        ("tenant_id", "uuid"),
        ("hostname", "text"),
        ("plan_code", "text"),
        ("billing_cycle", "text"),
        ("status", "text"),
        ("created_at", "timestamptz default now()"),
        ("updated_at", "timestamptz default now()"),
    ),
    "smtp_ip_addresses": (
        ("id", "uuid primary key"),
        ("vps_instance_id", "uuid"),
        ("ip_address", "inet"),
        ("is_dedicated", "boolean default true"),
        ("status", "text"),
        ("created_at", "timestamptz default now()"),
        ("updated_at", "timestamptz default now()"),
    ),
    "payments": (
        ("id", "uuid primary key"),
        ("subscription_id", "uuid"),
        ("amount", "numeric(12,2)"),
        ("currency", "char(3) default 'USD'"),
        ("status", "text"),
        ("billing_period_start", "date"),
        ("billing_period_end", "date"),
        ("paid_at", "timestamptz"),
        ("created_at", "timestamptz default now()"),
    ),
    "billing_analytics": (
        ("id", "uuid primary key"),
        ("subscription_id", "uuid"),
        ("period_start", "date"),
        ("period_end", "date"),
        ("emails_sent", "bigint"),
        ("emails_delivered", "bigint"),
        ("emails_bounced", "bigint"),
        ("created_at", "timestamptz default now()"),
    ),
}

# Subscription plans (name, monthly price in USD). "Free" makes revenue-0 tenants.
PLANS: Sequence[tuple[str, str]] = (
    ("Free", "0.00"),
    ("Starter", "29.00"),
    ("Growth", "99.00"),
    ("Pro", "299.00"),
    ("Business", "799.00"),
    ("Enterprise", "2499.00"),
)
PLAN_WEIGHTS = (8, 30, 28, 20, 10, 4)

# Provider VPS flavours and billing cycles; seeds/vps_price_list.csv prices every pair.
VPS_PLAN_CODES = ("vps-1gb", "vps-2gb", "vps-4gb", "vps-8gb", "vps-16gb")
VPS_PLAN_WEIGHTS = (15, 30, 30, 18, 7)
BILLING_CYCLES = ("monthly", "quarterly", "semiannually", "annually", "biennially", "triennially")
BILLING_CYCLE_WEIGHTS = (55, 15, 10, 14, 4, 2)

USAGE_DAYS = 110  # daily billing_analytics rows per subscription with usage


@dataclass(frozen=True)
class DemoSummary:
    tenants: int
    seed: int
    anchor_date: date
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _months_before(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _period_end(start: date) -> date:
    """Last day of a one-month period that starts on `start`."""
    return _months_before(start, -1) - timedelta(days=1)


def _messy(status: str, rng: random.Random) -> str:
    """Statuses arrive in any case and with stray spaces (about 1 row in 25)."""
    roll = rng.random()
    if roll < 0.015:
        return status.upper()
    if roll < 0.03:
        return f" {status.capitalize()} "
    if roll < 0.04:
        return f"{status} "
    return status


def _pick(rng: random.Random, values: Sequence[str], weights: Sequence[int]) -> str:
    return rng.choices(values, weights=weights, k=1)[0]


class _Generator:
    """Builds every table's rows from one seeded random stream, in a fixed order."""

    def __init__(
        self,
        tenants: int,
        seed: int,
        anchor: date,
        usage: Callable[[tuple[object, ...]], None] | None = None,
    ) -> None:
        self.tenants = tenants
        self.usage = usage  # where billing_analytics rows go; None: kept with the others
        self.rng = random.Random(seed)
        self.anchor = anchor
        # the moment the copy was taken: every load time is at or before it
        self.anchor_ts = datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC)

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def timestamp(self, days_ago: int) -> datetime:
        return self.anchor_ts - timedelta(days=days_ago, minutes=self.rng.randrange(1440))

    def build(self) -> dict[str, list[tuple[object, ...]]]:
        rng = self.rng
        rows: dict[str, list[tuple[object, ...]]] = {name: [] for name in APP_TABLES}

        plan_ids: list[uuid.UUID] = []
        for name, price in PLANS:
            plan_id = self.new_id()
            plan_ids.append(plan_id)
            created = self.timestamp(900)
            rows["plans"].append((plan_id, name, Decimal(price), "USD", created, created))
        prices = {
            plan_id: Decimal(price) for plan_id, (_, price) in zip(plan_ids, PLANS, strict=True)
        }

        vps_ids: list[uuid.UUID] = []
        ip_counter = 0

        def add_vps(tenant_id: uuid.UUID | None, status: str, host: str) -> uuid.UUID:
            vps_id = self.new_id()
            created = self.timestamp(rng.randrange(30, 700))
            rows["vps_instances"].append(
                (
                    vps_id,
                    tenant_id,
                    host,
                    _pick(rng, VPS_PLAN_CODES, VPS_PLAN_WEIGHTS),
                    _messy(_pick(rng, BILLING_CYCLES, BILLING_CYCLE_WEIGHTS), rng),
                    _messy(status, rng),
                    created,
                    created + timedelta(days=rng.randrange(30)),
                )
            )
            vps_ids.append(vps_id)
            return vps_id

        def add_ip(vps_id: uuid.UUID | None, status: str, dedicated: bool) -> None:
            nonlocal ip_counter
            ip_counter += 1
            address = f"10.{(ip_counter >> 16) & 255}.{(ip_counter >> 8) & 255}.{ip_counter & 255}"
            created = self.timestamp(rng.randrange(10, 600))
            rows["smtp_ip_addresses"].append(
                (
                    self.new_id(),
                    vps_id,
                    address,
                    dedicated,
                    _messy(status, rng),
                    created,
                    created,
                )
            )

        for number in range(1, self.tenants + 1):
            tenant_id = self.new_id()
            created = self.timestamp(rng.randrange(120, 1000))
            rows["companies"].append((tenant_id, f"Tenant {number:05d}", created, created))

            # Subscriptions: most tenants one active; some two; some only canceled/trialing.
            roll = rng.random()
            if roll < 0.08:
                statuses = ["active", "active"]
            elif roll < 0.16:
                statuses = ["canceled"]
            elif roll < 0.21:
                statuses = ["trialing"]
            elif roll < 0.24:
                statuses = ["past_due"]
            elif roll < 0.30:
                statuses = ["active", "canceled"]
            else:
                statuses = ["active"]
            has_usage = rng.random() >= 0.08
            for status in statuses:
                sub_id = self.new_id()
                plan_id = rng.choices(plan_ids, weights=PLAN_WEIGHTS, k=1)[0]
                period_start = self.anchor - timedelta(days=rng.randrange(30))
                if status == "canceled":
                    period_start = _months_before(period_start, rng.randrange(2, 6))
                sub_created = self.timestamp(rng.randrange(100, 700))
                # the application touches a subscription when its period rolls over
                rolled = datetime(
                    period_start.year, period_start.month, period_start.day, tzinfo=UTC
                ) + timedelta(minutes=rng.randrange(1440))
                rows["subscriptions"].append(
                    (
                        sub_id,
                        tenant_id,
                        plan_id,
                        _messy(status, rng),
                        period_start,
                        _period_end(period_start),
                        sub_created,
                        min(max(sub_created, rolled), self.anchor_ts),
                    )
                )
                if status != "trialing" and prices[plan_id] > 0:
                    self.add_payments(rows, sub_id, prices[plan_id], period_start)
                if has_usage:
                    self.add_usage(rows, sub_id, period_start if status == "canceled" else None)

            # Infrastructure: 0-4 VPS with 0-3 IPs each; tenants without usage have none.
            if has_usage:
                for vps_number in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
                    status = rng.choices(
                        ("active", "stopped", "provisioning", "terminated"),
                        weights=(82, 5, 3, 10),
                        k=1,
                    )[0]
                    vps_id = add_vps(tenant_id, status, f"t{number:05d}-mx{vps_number + 1}")
                    for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
                        ip_status = rng.choices(
                            ("active", "warmed", "warming", "retired", "blacklisted"),
                            weights=(50, 20, 12, 12, 6),
                            k=1,
                        )[0]
                        add_ip(vps_id, ip_status, rng.random() >= 0.08)

        # The shared pool: VPS with no tenant, and IPs assigned to no VPS.
        for pool_number in range(max(1, self.tenants // 50)):
            vps_id = add_vps(None, "active", f"pool-mx{pool_number + 1}")
            for _ in range(2):
                add_ip(vps_id, "active", True)
        for _ in range(max(1, self.tenants // 30)):
            add_ip(None, rng.choice(("active", "warming", "retired")), True)
        return rows

    def add_payments(
        self,
        rows: dict[str, list[tuple[object, ...]]],
        sub_id: uuid.UUID,
        price: Decimal,
        period_start: date,
    ) -> None:
        rng = self.rng
        for months_back in range(3):
            start = _months_before(period_start, months_back)
            status = rng.choices(
                ("succeeded", "failed", "pending", "refunded"), weights=(85, 5, 6, 4), k=1
            )[0]
            paid = self.timestamp((self.anchor - start).days) if status != "pending" else None
            created = paid or self.anchor_ts
            rows["payments"].append(
                (
                    self.new_id(),
                    sub_id,
                    price,
                    "USD",
                    _messy(status, rng),
                    start,
                    _period_end(start),
                    paid if status in ("succeeded", "refunded") else None,
                    created,
                )
            )
            if status == "failed" and rng.random() < 0.7:  # the retry usually succeeds
                rows["payments"].append(
                    (
                        self.new_id(),
                        sub_id,
                        price,
                        "USD",
                        "succeeded",
                        start,
                        _period_end(start),
                        min(created + timedelta(days=2), self.anchor_ts),
                        min(created + timedelta(days=2), self.anchor_ts),
                    )
                )

    def add_usage(
        self, rows: dict[str, list[tuple[object, ...]]], sub_id: uuid.UUID, ended: date | None
    ) -> None:
        rng = self.rng
        scale = int(rng.lognormvariate(6.5, 1.2))  # emails per day, heavy-tailed
        last_day = ended if ended is not None else self.anchor
        first_day = self.anchor - timedelta(days=USAGE_DAYS - 1)
        day = first_day
        created_base = datetime(first_day.year, first_day.month, first_day.day, 23, 30, tzinfo=UTC)
        offset = 0
        keep = self.usage or rows["billing_analytics"].append
        while day <= last_day:
            sent = max(0, int(scale * rng.uniform(0.5, 1.5))) if rng.random() >= 0.05 else 0
            bounced = int(sent * rng.uniform(0.0, 0.04))
            delivered: int | None = sent - bounced if rng.random() >= 0.02 else None
            keep(
                (
                    self.new_id(),
                    sub_id,
                    day,
                    day,
                    sent,
                    delivered,
                    bounced,
                    min(created_base + timedelta(days=offset), self.anchor_ts),
                )
            )
            day += timedelta(days=1)
            offset += 1


def _qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def _check_replaceable(conn: psycopg.Connection, schema: str) -> None:
    """Refuse to drop application tables that demo-data did not create."""
    found = conn.execute(
        """
        select c.relname, coalesce(obj_description(c.oid, 'pg_class'), '')
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p', 'v', 'm')
        """,
        (schema, list(APP_TABLES)),
    ).fetchall()
    foreign = sorted(name for name, comment in found if not str(comment).startswith(DEMO_MARKER))
    if foreign:
        raise PmcostError(
            f"{schema}.{foreign[0]} exists and was not created by `pmcost demo-data`; "
            "demo data never overwrites real tables: use another --schema or another database"
        )


def create_schema(conn: psycopg.Connection, schema: str) -> None:
    """(Re)create the application tables, pre-migration, marked as demo data."""
    _check_replaceable(conn, schema)
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    for table in reversed(list(APP_TABLES)):
        # cascade: a view an older build of the project kept over billing_analytics goes
        # too (today's builds keep none); only tables marked as demo data ever get here
        conn.execute(sql.SQL("drop table if exists {} cascade").format(_qualified(schema, table)))
    for table, columns in APP_TABLES.items():
        column_sql = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(definition))  # static text
            for name, definition in columns
        )
        conn.execute(sql.SQL("create table {} ({})").format(_qualified(schema, table), column_sql))
        conn.execute(
            sql.SQL("comment on table {} is {}").format(
                _qualified(schema, table),
                sql.Literal(
                    f"{DEMO_MARKER}: the application's {table} table, before the migration"
                ),
            )
        )


@contextmanager
def _copy(conn: psycopg.Connection, schema: str, table: str) -> Iterator[psycopg.Copy]:
    columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in APP_TABLES[table])
    statement = sql.SQL("copy {} ({}) from stdin").format(_qualified(schema, table), columns)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        yield copy


def copy_rows(
    conn: psycopg.Connection, schema: str, table: str, rows: Iterable[tuple[object, ...]]
) -> None:
    with _copy(conn, schema, table) as copy:
        for row in rows:
            copy.write_row(row)


def load(
    conn: psycopg.Connection,
    *,
    tenants: int,
    seed: int,
    anchor: date,
    schema: str,
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Create the application tables in `schema` and fill them; returns row counts."""
    if tenants < 1:
        raise UsageError(f"--tenants must be at least 1, got {tenants}")
    started = time.perf_counter()
    counts: dict[str, int] = {}
    with conn.transaction():
        create_schema(conn, schema)
        with _copy(conn, schema, "billing_analytics") as copy:
            usage_rows = 0

            def stream(row: tuple[object, ...]) -> None:
                nonlocal usage_rows
                copy.write_row(row)
                usage_rows += 1

            rows = _Generator(tenants, seed, anchor, usage=stream).build()
        for table, table_rows in rows.items():
            if table != "billing_analytics":
                copy_rows(conn, schema, table, table_rows)
            counts[table] = usage_rows if table == "billing_analytics" else len(table_rows)
            if progress:
                progress(f"  {schema}.{table}: {counts[table]:,} rows")
    created = access.ensure_group_roles(conn)
    access.grant_application_columns(
        conn,
        schema,
        {table: [name for name, _ in columns] for table, columns in APP_TABLES.items()},
    )
    if progress and created:
        progress(f"  created roles: {', '.join(created)} (NOLOGIN groups of the access matrix)")
    for table in APP_TABLES:
        conn.execute(sql.SQL("analyze {}").format(_qualified(schema, table)))
    return DemoSummary(
        tenants=tenants,
        seed=seed,
        anchor_date=anchor,
        rows=counts,
        seconds=time.perf_counter() - started,
    )
