"""History: the daily fact is incremental with a lookback, backfills are reproducible, and a
past day keeps the prices that held then (snapshots)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from pmcost import publish
from pmcost.errors import PmcostError
from pmcost.lookback import Arrivals, plan
from pmcost.refresh import WITHOUT_UNIT_TESTS

from .conftest import ANCHOR, Database, project_copy

DAY1 = date(2026, 11, 20)
DAY2 = DAY1 + timedelta(days=1)
FACT = "analytics.fct_tenant_economics_daily"


def _rows(database: Database, day: date) -> dict[object, tuple]:
    return {
        row[0]: row[1:]
        for row in database.query(
            f"select * from {FACT} where economics_date = %s order by tenant_id", (day,)
        )
    }


def _emails(database: Database, day: date) -> int:
    return int(
        database.query(
            f"select coalesce(sum(emails_sent_last_30_days), 0) from {FACT} "
            "where economics_date = %s",
            (day,),
        )[0][0]
    )


def _run_fact(
    database: Database,
    as_of: date,
    history_start: date | None = None,
    extra_vars: dict[str, object] | None = None,
) -> None:
    """A daily run or a backfill, published (a publish needs the whole build)."""
    database.build(as_of=as_of, history_start=history_start, extra_vars=extra_vars)


@pytest.fixture
def history(built: Database) -> Database:
    """A copy of the session's built demo database: its daily fact holds the lookback's days
    up to DAY1 (the tests' as-of date), as a daily run leaves it."""
    assert ANCHOR == DAY1
    return built


def _add_day(database: Database, day: date, emails: int = 1000) -> None:
    """A billing row on `day` for every active subscription (the application's next day)."""
    database.query(
        "insert into billing_analytics (id, subscription_id, period_start, period_end, "
        "emails_sent, emails_delivered, emails_bounced, created_at) "
        "select gen_random_uuid(), id, %s, %s, %s, %s, 0, now() from subscriptions "
        "where lower(trim(status)) = 'active' returning 1",
        (day, day, emails, emails),
    )


def _autovacuum_off(database: Database) -> dict[str, bool]:
    """Whether autovacuum is off each table of the project's model schemas (the table's
    own setting and its TOAST table's)."""
    return {
        row[0]: row[1]
        for row in database.query(
            """
            select
                n.nspname || '.' || c.relname,
                coalesce(c.reloptions, '{}') @> '{autovacuum_enabled=false}'
                and coalesce(toast.reloptions, '{autovacuum_enabled=false}')
                    @> '{autovacuum_enabled=false}'
            from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            left join pg_class as toast on toast.oid = c.reltoastrelid
            where c.relkind = 'r'
              and n.nspname in ('analytics', 'analytics_candidate', 'analytics_staging',
                                'analytics_intermediate', 'analytics_utilities')
            """
        )
    }


def test_incremental_day_two_keeps_day_one(history: Database) -> None:
    lookback = history.query(f"select min(economics_date), max(economics_date) from {FACT}")[0]
    assert lookback == (DAY1 - timedelta(days=3), DAY1)
    day1 = _rows(history, DAY1)
    _add_day(history, DAY2)
    # a fact published before one of its margin rules existed
    with history.connect() as conn:
        conn.execute(f"alter table {FACT} drop constraint monthly_profit_is_revenue_minus_cost")
    history.build(as_of=DAY2)  # the daily run, incremental
    assert _rows(history, DAY1) == day1
    # the carried copy has the model's rules as the code states them, the one added since
    # included: they hold for the days the run wrote, and the carried days, checked when
    # they were written, are not read again (NOT VALID)
    rules = dict(
        history.query(
            "select conname, convalidated from pg_constraint "
            f"where conrelid = '{FACT}'::regclass and contype = 'c'"
        )
    )
    assert rules["monthly_profit_is_revenue_minus_cost"] is False
    assert len(rules) == 10 and not any(rules.values())
    assert history.query(f"select max(economics_date) from {FACT}") == [(DAY2,)]
    # the fact continued a carried copy of the published one. The build keeps its tables'
    # statistics itself, autovacuum off them (own_statistics), and it stays off once they
    # are published: the next publish replaces them (a merged history gets it back, below)
    off = _autovacuum_off(history)
    assert {table for table, is_off in off.items() if not is_off} == set()
    assert "analytics.fct_tenant_economics_daily" in off
    assert "analytics_staging.stg_app__payments" in off
    # the marts for day 2 equal the fact's day-2 rows (a dbt test checks every column)
    test = history.dbt(
        "test",
        "--select",
        "assert_daily_fact_matches_marts",
        as_of=DAY2,
        extra_vars={"publish_stage": "published"},
    )
    assert test.returncode == 0, test.stdout[-3000:]


def test_a_long_history_is_merged_at_the_publish_not_copied_into_each_build(
    history: Database,
) -> None:
    """With more published days than a run writes and reads, a daily run's cost does not grow
    with the history: the candidate starts from the days the build reads and does not write
    (the anomalies' trailing days), and the publish merges the run's days into the published
    fact and moves it into the switched-in schema. That move needs the fact to itself for a
    moment: a reader that keeps it longer than the publish's lock timeout makes the publish
    give up, and nothing is published."""
    # 21 days published: the lookback's four, and before them copies of its first day (what
    # the older days hold does not matter here, only that the merge leaves them as they are)
    start = DAY1 - timedelta(days=20)
    first = DAY1 - timedelta(days=3)
    history.extend_history_back(first, start)
    oldest = _rows(history, start)
    assert oldest
    _add_day(history, DAY2)
    history.dbt("build", *WITHOUT_UNIT_TESTS, as_of=DAY2, check=True)
    candidate = FACT.replace("analytics.", "analytics_candidate.", 1)
    trailing = 7  # var anomaly_trailing_days
    assert history.query(f"select min(economics_date), max(economics_date) from {candidate}") == [
        (DAY2 - timedelta(days=trailing), DAY2)
    ]
    table = history.query(f"select '{FACT}'::regclass::oid::bigint")[0][0]

    with history.connect(autocommit=False) as reader:
        reader.execute(f"select count(*) from {FACT}")  # in its open transaction: held
        with history.connect() as conn, pytest.raises(PmcostError, match=f"{FACT} was held"):
            publish.publish(
                conn, history.target, accept_changes=True, lock_timeout_ms=800, say=print
            )
        reader.rollback()
    assert history.query(f"select max(economics_date) from {FACT}") == [(DAY1,)]

    said: list[str] = []
    with history.connect() as conn:
        publish.publish(conn, history.target, accept_changes=True, say=said.append)
    assert any(
        line.startswith("publish: fct_tenant_economics_daily: the run's 4 days") for line in said
    ), said
    assert history.query(
        f"select min(economics_date), max(economics_date), count(distinct economics_date) "
        f"from {FACT}"
    ) == [(start, DAY2, 22)]
    assert history.query(f"select '{FACT}'::regclass::oid::bigint")[0][0] == table
    assert _rows(history, start) == oldest
    # each publish deletes and inserts days of the merged fact in place: autovacuum is back
    # on it, and only on it
    off = _autovacuum_off(history)
    assert {table for table, is_off in off.items() if not is_off} == {FACT}
    # no day twice: the fact's key holds over the whole merged history
    assert history.query(
        f"select count(*) from (select tenant_id, economics_date from {FACT} "
        "group by 1, 2 having count(*) > 1) as twice"
    ) == [(0,)]
    # its tenant policy calls the function published with it; the retired schema is gone
    assert history.query(
        "select pg_get_expr(polqual, polrelid) from pg_policy "
        f"where polrelid = '{FACT}'::regclass and polname = 'tenant_isolation'"
    ) == [("(tenant_id = analytics.current_tenant_id())",)]
    assert not history.query("select 1 from pg_namespace where nspname = 'analytics_previous'")

    # a fact published before one of its rules existed: its shape is not the build's, so the
    # publish copies the published days the build lacks into the build's table (its rules
    # NOT VALID, as on a carried copy) and switches that in
    history.execute(f"alter table {FACT} drop constraint monthly_profit_is_revenue_minus_cost")
    day3 = DAY2 + timedelta(days=1)
    _add_day(history, day3)
    history.dbt("build", *WITHOUT_UNIT_TESTS, as_of=day3, check=True)
    said.clear()
    with history.connect() as conn:
        publish.publish(conn, history.target, accept_changes=True, say=said.append)
    assert any("shape differs from the build's" in line for line in said), said
    assert history.query(
        f"select min(economics_date), max(economics_date), count(distinct economics_date) "
        f"from {FACT}"
    ) == [(start, day3, 23)]
    assert history.query(f"select '{FACT}'::regclass::oid::bigint")[0][0] != table
    assert _rows(history, start) == oldest
    assert history.query(
        "select convalidated from pg_constraint where conrelid = %s::regclass "
        "and conname = 'monthly_profit_is_revenue_minus_cost'",
        (FACT,),
    ) == [(False,)]


def test_late_rows_inside_the_lookback_count_outside_do_not(history: Database) -> None:
    # both days are in the published fact already (the daily run of DAY1 wrote DAY1 - 3 to
    # DAY1); a daily run of DAY2 recomputes DAY2 - 3 to DAY2, so DAY1 - 3 is outside it
    inside, outside = DAY1, DAY2 - timedelta(days=4)
    assert history.query(f"select min(economics_date) from {FACT}") == [(outside,)]
    before_inside, before_outside = _emails(history, inside), _emails(history, outside)
    _add_day(history, inside, emails=5000)
    _add_day(history, outside, emails=7000)
    _run_fact(history, DAY2)
    assert _emails(history, inside) > before_inside  # inside the 3-day lookback: picked up
    assert _emails(history, outside) == before_outside  # outside: kept until a backfill
    _run_fact(history, DAY2, outside)
    assert _emails(history, outside) > before_outside


def test_backfill_twice_gives_identical_rows(history: Database) -> None:
    """A backfill is deterministic, and the email window's two forms (each day's sum, as an
    11-day run makes it, and the running sum of a longer backfill, forced here with
    email_window_direct_max_days 0) give the same rows on the demo's data."""
    start = DAY1 - timedelta(days=10)
    _run_fact(history, DAY1, start)
    first = history.query(f"select * from {FACT} order by tenant_id, economics_date")
    _run_fact(history, DAY1, start, extra_vars={"email_window_direct_max_days": 0})
    assert history.query(f"select * from {FACT} order by tenant_id, economics_date") == first
    assert len({row[1] for row in first}) == 11
    assert any(row[11] > 0 for row in first)  # emails_sent_last_30_days: the window counted


def test_anomalies_flag_a_tenant_whose_cost_jumped(history: Database) -> None:
    tenant = history.query(
        f"select tenant_id from {FACT} where economics_date = %s and total_monthly_cost > 0 "
        "order by tenant_id limit 1",
        (DAY1,),
    )[0][0]
    history.query(
        "update vps_instances set approximate_cost = 999 where tenant_id = %s "
        "and lower(trim(status)) = 'active' returning 1",
        (tenant,),
    )
    history.build(as_of=DAY2)
    flagged = history.query(
        "select anomaly_type from analytics.tenant_cost_anomalies where tenant_id = %s", (tenant,)
    )
    assert ("cost_moved",) in flagged
    assert ("health_status_dropped",) in flagged or history.query(
        f"select business_health_status from {FACT} where tenant_id = %s and economics_date = %s",
        (tenant, DAY1),
    )[0][0] == "Critical Action Required"


def test_refresh_backfills_a_range_from_the_command_line(history: Database) -> None:
    start = DAY1 - timedelta(days=10)
    result = history.pmcost(
        "refresh",
        "--target",
        "postgres",
        "--as-of",
        DAY1.isoformat(),
        "--history-start",
        start.isoformat(),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    days = history.query(f"select min(economics_date), count(distinct economics_date) from {FACT}")
    assert days == [(start, 11)]
    wrong = history.pmcost(
        "refresh",
        "--target",
        "postgres",
        "--as-of",
        DAY1.isoformat(),
        "--history-start",
        (DAY1 + timedelta(days=1)).isoformat(),
    )
    assert wrong.returncode == 2
    assert "--history-start is after the as-of date" in wrong.stderr


def test_pmcost_dbt_takes_a_history_start_as_refresh_does(history: Database) -> None:
    start = DAY1 - timedelta(days=6)
    result = history.pmcost(
        "dbt",
        "--as-of",
        DAY1.isoformat(),
        "--history-start",
        start.isoformat(),
        "--",
        "run",
        "--select",
        "tag:daily",
        "--full-refresh",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    candidate = FACT.replace("analytics.", "analytics_candidate.", 1)
    days = history.query(
        f"select min(economics_date), count(distinct economics_date) from {candidate}"
    )
    assert days == [(start, 7)]


def test_price_edits_move_day_two_not_day_one(history: Database, tmp_path: Path) -> None:
    """After day 1, the application raises a plan's price and Finance edits the price list
    in place (seed CSV). The snapshots keep the old prices for day 1, which the day-2 run
    recomputes inside its lookback: day 1's revenue and cost stay, day 2's move by the edits.
    (One day-2 run for both: revenue and infrastructure cost are separate columns.)"""

    def total(column: str, day: date) -> object:
        statement = f"select sum({column}) from {FACT} where economics_date = %s"
        return history.query(statement, (day,))[0][0]

    pro_tenants = history.query(
        "select count(*) from analytics.executive_business_summary where plan_name = 'Pro'"
    )
    assert pro_tenants[0][0] > 0
    revenue1 = total("monthly_subscription_revenue", DAY1)
    infrastructure1 = total("infrastructure_cost", DAY1)
    history.query(
        "update plans set price_monthly = price_monthly + 100 where name = 'Pro' returning 1"
    )
    project = project_copy(tmp_path)
    prices = project / "seeds" / "vps_price_list.csv"
    rows = prices.read_text().splitlines()
    edited = [
        ",".join([*row.split(",")[:2], f"{float(row.split(',')[2]) * 2:.2f}", *row.split(",")[3:]])
        if i
        else row
        for i, row in enumerate(rows)
    ]
    prices.write_text("\n".join(edited) + "\n")
    history.build("--project-dir", str(project), as_of=DAY2)

    assert total("monthly_subscription_revenue", DAY1) == revenue1
    assert total("infrastructure_cost", DAY1) == infrastructure1
    pro_subscriptions = history.query(
        "select count(*) from subscriptions as s join plans as p on p.id = s.plan_id "
        "where lower(trim(s.status)) = 'active' and p.name = 'Pro'"
    )[0][0]
    assert total("monthly_subscription_revenue", DAY2) - revenue1 == 100 * pro_subscriptions
    assert total("infrastructure_cost", DAY2) > infrastructure1


def test_the_carried_history_is_created_with_autovacuum_off(history: Database) -> None:
    """The build's first step copies the published fact into the candidate; autovacuum must
    be off that copy from its creation (a vacuum of it while the fact's model ran deadlocked
    a large daily run), not only from the model's post-hook. The model fails here (an input
    is gone), so what remains in the candidate is the copy as it was created."""
    published = _autovacuum_off(history)[FACT]
    history.execute("drop table analytics_intermediate.int_tenant_email_volume_daily")
    result = history.dbt("run", "--select", "fct_tenant_economics_daily")
    assert result.returncode == 1
    assert "carried" in result.stdout
    carried = _autovacuum_off(history)
    assert carried["analytics_candidate.fct_tenant_economics_daily"] is True
    # the published fact is untouched, its setting too
    assert carried[FACT] is published


def _refresh(database: Database) -> str:
    result = database.pmcost("refresh", "--target", "postgres", "--as-of", DAY1.isoformat())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return result.stdout


def test_a_refresh_recomputes_the_days_late_rows_describe(history: Database) -> None:
    """A daily refresh recomputes the as-of day, and the earlier days of the lookback that
    rows loaded since the last publish describe; the others keep their published figures.
    A refresh that fails records nothing: after the fix, the next one reads the same rows."""
    late, kept_day = DAY1 - timedelta(days=2), DAY1 - timedelta(days=3)
    # the template was published by `dbt build` and `pmcost publish`, which record no loads
    # (a refresh on it recomputes the whole lookback: the other refresh tests); what a
    # refresh's publish records, the feeds' latest loads (test_orchestration checks one)
    history.query(
        "update analytics_publication.published_runs set loaded_through = jsonb_build_object("
        "'billing_analytics', (select max(created_at) from billing_analytics), "
        "'payments', (select max(greatest(created_at, paid_at)) from payments)) returning 1"
    )

    # the morning after: a usage row lands two days late, and a subscription is canceled
    before_late, before_kept = _emails(history, late), _rows(history, kept_day)
    tenant = history.query(
        f"select tenant_id from {FACT} where economics_date = %s order by tenant_id limit 1",
        (DAY1,),
    )[0][0]
    history.query(
        "update subscriptions set status = 'canceled' where tenant_id = %s returning 1", (tenant,)
    )
    _add_day(history, late, emails=5000)
    # a bad row fails the refresh after it read the loads; the publish recorded nothing
    history.query("update plans set price_monthly = null where name = 'Starter' returning 1")
    failed = history.pmcost("refresh", "--target", "postgres", "--as-of", DAY1.isoformat())
    assert failed.returncode == 1 and "nothing was published" in failed.stderr
    assert _emails(history, late) == before_late
    history.query("update plans set price_monthly = 29.00 where name = 'Starter' returning 1")

    said = _refresh(history)
    assert (
        f"history: recomputing {late} to {DAY1}: rows of billing_analytics loaded since the "
        f"last publish describe days from {late}" in said
    )
    assert _emails(history, late) > before_late  # the late rows, counted on their day
    assert _rows(history, kept_day) == before_kept  # not recomputed: as published
    days_of_tenant = history.query(
        f"select economics_date from {FACT} where tenant_id = %s order by 1", (tenant,)
    )
    assert days_of_tenant == [(kept_day,)]  # canceled: gone from the recomputed days only

    # nothing loaded since: the as-of day alone
    said = _refresh(history)
    assert f"history: recomputing {DAY1} only" in said
    summary = json.loads((history.work_dir / "target" / "refresh" / "last.json").read_text())
    assert summary["history_start"] == DAY1.isoformat()
    assert _rows(history, kept_day) == before_kept
    assert history.query(
        f"select min(economics_date), count(distinct economics_date) from {FACT}"
    ) == [(kept_day, 4)]


def _arrivals(
    first_days: dict[str, date | None],
    unrecorded: tuple[str, ...] = (),
    published_as_of: date | None = DAY1,
) -> Arrivals:
    return Arrivals({table: None for table in first_days}, first_days, unrecorded, published_as_of)


def test_the_run_days_follow_the_late_rows_within_the_lookback() -> None:
    as_of, lookback_start = DAY1, DAY1 - timedelta(days=3)
    assert plan(as_of, 3, None).history_start == lookback_start
    unrecorded = plan(as_of, 3, _arrivals({}, ("payments",)))
    assert unrecorded.history_start == lookback_start
    assert "no record of what payments had loaded" in unrecorded.said
    # nothing late, or rows of the as-of day only: the as-of day alone
    assert plan(as_of, 3, _arrivals({"billing_analytics": None})).history_start == as_of
    assert plan(as_of, 3, _arrivals({"payments": as_of})).history_start == as_of
    two = plan(
        as_of,
        3,
        _arrivals({"billing_analytics": DAY1 - timedelta(days=1), "payments": DAY1 - timedelta(2)}),
    )
    assert two.history_start == DAY1 - timedelta(days=2) and two.warning is None
    assert "rows of billing_analytics, payments loaded since" in two.said
    early = plan(as_of, 3, _arrivals({"billing_analytics": DAY1 - timedelta(days=10)}))
    assert early.history_start == lookback_start and early.warning is not None
    assert f"--history-start {DAY1 - timedelta(days=10)}" in early.warning
    # a day the schedule skipped has no history yet: it is recomputed, late rows or not
    skipped = plan(
        as_of, 3, _arrivals({"billing_analytics": None}, published_as_of=DAY1 - timedelta(days=2))
    )
    assert skipped.history_start == DAY1 - timedelta(days=1)
    assert f"the last published day is {DAY1 - timedelta(days=2)}" in skipped.said
    behind = plan(as_of, 3, _arrivals({"payments": None}, published_as_of=DAY1 - timedelta(days=9)))
    assert behind.history_start == lookback_start and behind.warning is not None
    assert f"--history-start {DAY1 - timedelta(days=8)}" in behind.warning
