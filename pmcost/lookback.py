"""The days a daily refresh recomputes: the as-of day, and the earlier days of the lookback
that rows loaded since the last publish describe.

The lookback (var daily_lookback_days, 3) exists for late rows: usage that lands a day or
two after its day, a payment recorded after its billing period began. A daily refresh reads,
from the two feeds that bring them, what was loaded since the last publish (a row's
`created_at`, and a payment's `paid_at`, after the latest one that publish saw) and the
earliest day those rows describe. It recomputes from that day (or from the day after the
last published one, when the schedule skipped days), within the lookback, to the as-of day;
otherwise the as-of day alone. The other days keep the figures they were published with:
the application keeps current statuses only, so recomputing a day that no late row
describes would only rewrite it with today's statuses.

The publish records what each feed had loaded (`published_runs.loaded_through`). A refresh
without that record (the first, or after a backfill, a full refresh, a rewind, or a build
published by hand) recomputes the whole lookback, as `dbt build` does. Rows describing a
day before the lookback are named, with the backfill that counts them.

A load still uncommitted while the refresh reads the feeds, with rows stamped before the
latest load it sees, is not read as new by the next refresh: the as-of day counts its rows,
an earlier day only after a backfill (as with a row later than the lookback).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg
from psycopg import sql

from pmcost import db, publish
from pmcost.settings import Target


@dataclass(frozen=True)
class Feed:
    """An application table whose rows may arrive after the days they describe."""

    table: str
    day: str  # the column naming the day a row describes
    loaded: tuple[str, ...]  # when a row was loaded or changed: the latest of these columns


FEEDS = (
    Feed("billing_analytics", "period_start", ("created_at",)),
    Feed("payments", "billing_period_start", ("created_at", "paid_at")),
)


@dataclass(frozen=True)
class Arrivals:
    """What the feeds loaded since the last publish's record."""

    # per feed, the latest load this run saw (ISO timestamp; None for an empty feed): the
    # next refresh reads rows loaded after it
    loaded_through: dict[str, str | None]
    # the earliest day on or before the as-of day that rows loaded since describe, per feed
    # with a record; None where none does
    first_days: dict[str, date | None]
    # the feeds the last publish recorded no load for
    unrecorded: tuple[str, ...]
    # the last published day (a day after it and before the as-of day has no history yet)
    published_as_of: date | None = None


def read_arrivals(
    conn: psycopg.Connection, app_schema: str, as_of: date, published_schema: str
) -> Arrivals | None:
    """What the last publish of `published_schema` recorded, then one scan of each feed: its
    latest load (never later than now: a row dated in the future is read again until then)
    and the earliest day described by rows loaded after the record. None when a feed cannot
    be read (a missing table or column: dbt's source check names it)."""
    try:
        return _read(conn, app_schema, as_of, published_schema)
    except psycopg.Error:
        return None


def _read(
    conn: psycopg.Connection, app_schema: str, as_of: date, published_schema: str
) -> Arrivals:
    recorded = publish.last_loaded_through(conn, published_schema) or {}
    through: dict[str, str | None] = {}
    first_days: dict[str, date | None] = {}
    unrecorded: list[str] = []
    for feed in FEEDS:
        loaded = sql.SQL("greatest({})").format(
            sql.SQL(", ").join(sql.Identifier(column) for column in feed.loaded)
        )
        mark = recorded.get(feed.table)
        row = conn.execute(
            sql.SQL(
                "select least(max({loaded}), now()), "
                "min({day}) filter (where {loaded} > %s::timestamptz and {day} <= %s) "
                "from {table}"
            ).format(
                loaded=loaded,
                day=sql.Identifier(feed.day),
                table=sql.Identifier(app_schema, feed.table),
            ),
            (mark, as_of),
        ).fetchone()
        latest, first = (row[0], row[1]) if row else (None, None)
        through[feed.table] = latest.isoformat() if isinstance(latest, datetime) else None
        if mark is not None:
            first_days[feed.table] = first
        else:  # no record, or the feed was empty then: every row is new to the history
            unrecorded.append(feed.table)
    published_as_of = publish.last_published_as_of(conn, published_schema)
    return Arrivals(through, first_days, tuple(unrecorded), published_as_of)


@dataclass(frozen=True)
class Plan:
    history_start: date  # the first day the run recomputes
    said: str  # what the refresh prints about it
    warning: str | None = None  # rows before the lookback, with the backfill that counts them


def plan(as_of: date, lookback_days: int, arrivals: Arrivals | None) -> Plan:
    """The run's first day: the earliest day late rows describe, and the first day after the
    last published one (a day the schedule skipped has no history yet), within the lookback;
    the whole lookback without a record of the feeds' loads."""
    earliest = as_of - timedelta(days=lookback_days)
    whole = f"history: recomputing {earliest} to {as_of}, the lookback of {lookback_days} days"
    if arrivals is None:
        return Plan(earliest, f"{whole} (the feeds' loads could not be read)")
    if arrivals.unrecorded:
        missing = ", ".join(arrivals.unrecorded)
        return Plan(
            earliest, f"{whole} (no record of what {missing} had loaded at the last publish)"
        )
    late = {table: day for table, day in arrivals.first_days.items() if day and day < as_of}
    reasons: dict[date, str] = {}
    if late:
        feeds = ", ".join(sorted(late))
        day = min(late.values())
        reasons[day] = f"rows of {feeds} loaded since the last publish describe days from {day}"
    published_as_of = arrivals.published_as_of
    if published_as_of is not None and published_as_of + timedelta(days=1) < as_of:
        reasons.setdefault(
            published_as_of + timedelta(days=1), f"the last published day is {published_as_of}"
        )
    if not reasons:
        return Plan(
            as_of,
            f"history: recomputing {as_of} only: no usage rows or payments loaded since the "
            "last publish describe an earlier day",
        )
    first = min(reasons)
    if first < earliest:
        return Plan(
            earliest,
            whole,
            f"history: {reasons[first]}, before the lookback; `pmcost refresh --as-of "
            f"{as_of} --history-start {first}` recomputes the days from {first}",
        )
    return Plan(first, f"history: recomputing {first} to {as_of}: {reasons[first]}")


class ArrivalsReader:
    """read_arrivals on a connection of its own, in a thread, while dbt starts (one core is
    idle then; one process: no parallel workers beside dbt), once `after` returns (another
    scan of the same tables, which would otherwise take the core dbt's start needs). Any
    error leaves no arrivals, so the run recomputes the whole lookback and records nothing
    for the next."""

    def __init__(
        self,
        target: Target,
        as_of: date,
        published_schema: str,
        after: Callable[[], object] = lambda: None,
    ) -> None:
        self._arrivals: Arrivals | None = None
        self._thread = threading.Thread(
            target=self._read,
            args=(target, as_of, published_schema, after),
            name="arrivals",
            daemon=True,
        )
        self._thread.start()

    def _read(
        self, target: Target, as_of: date, published_schema: str, after: Callable[[], object]
    ) -> None:
        try:
            after()
            with db.connection(target) as conn:
                conn.execute("set max_parallel_workers_per_gather = 0")
                self._arrivals = read_arrivals(conn, target.app_schema, as_of, published_schema)
        except Exception:  # the server could not be reached: the refresh's next step says so
            self._arrivals = None

    def arrivals(self) -> Arrivals | None:
        self._thread.join()
        return self._arrivals
