"""The margin tests guard the marts. The row rules (totals equal their parts, profit equals
revenue minus cost, ratios, score and health status recomputed from their inputs, not null,
not negative, known values) are the marts' own constraints: PostgreSQL refuses a row that
breaks one, in a build as in any later write, and the error names the rule. What one row
cannot show (a tenant twice, totals that disagree across tables) are dbt tests: a corrupted
mart makes the matching test fail."""

from __future__ import annotations

import psycopg
import pytest

from .conftest import ANCHOR, Database

EXEC = "analytics.executive_business_summary"
ALLOC = "analytics.business_cost_allocation"
FACT = "analytics.fct_tenant_economics_daily"
ONE_EXEC = f"tenant_id = (select min(tenant_id::text)::uuid from {EXEC})"
ONE_ALLOC = f"tenant_id = (select min(tenant_id::text)::uuid from {ALLOC})"
ONE_FACT = (
    f"(tenant_id, economics_date) = (select tenant_id, economics_date from {FACT} "
    "order by tenant_id, economics_date limit 1)"
)

# a fan-out as a join bug makes it: the infrastructure cost doubled, and every figure
# derived from it recomputed, so the row itself keeps every rule
_COST = "(infrastructure_costs * 2 + email_service_costs)"
_REVENUE = "monthly_subscription_revenue"
FAN_OUT = (
    f"update {EXEC} set infrastructure_costs = infrastructure_costs * 2, "
    "total_infrastructure_cost = total_infrastructure_cost * 2, "
    f"total_operational_cost = {_COST}, total_monthly_cost = {_COST}, "
    f"monthly_profit = {_REVENUE} - {_COST}, "
    f"gross_margin_ratio = round({_REVENUE} / {_COST}, 2), "
    f"cost_efficiency_score = case when {_REVENUE} > 0 then least(100, greatest(0, "
    f"round(({_REVENUE} - {_COST}) / {_REVENUE} * 100, 2))) else 0 end, "
    f"business_health_status = case when {_REVENUE} > {_COST} * 2 then 'Excellent' "
    f"when {_REVENUE} > {_COST} * 1.5 then 'Good' when {_REVENUE} > {_COST} then 'Monitor' "
    f"else 'Critical Action Required' end where {ONE_EXEC} and infrastructure_costs > 0"
)

# (statement, the dbt test that must fail)
CORRUPTIONS = {
    "tenant_twice": (
        f"insert into {EXEC} select * from {EXEC} where {ONE_EXEC}",
        "primary_key_executive_business_summary_tenant_id",
    ),
    "fan_out_inflates_infrastructure": (
        FAN_OUT,
        "executive_summary_infrastructure_cost_has_no_fan_out",
    ),
}

# rows the marts' constraints refuse: (statement, error class, the rule or column it names)
REFUSED = {
    "profit_is_not_revenue_minus_cost": (
        f"update {EXEC} set monthly_profit = monthly_profit + 0.01 where {ONE_EXEC}",
        psycopg.errors.CheckViolation,
        "monthly_profit_is_revenue_minus_cost",
    ),
    "total_is_not_the_sum_of_its_parts": (
        # a part grows, and every figure but this total follows it
        f"update {EXEC} set infrastructure_costs = infrastructure_costs + 1, "
        "total_infrastructure_cost = total_infrastructure_cost + 1, "
        "total_monthly_cost = total_monthly_cost + 1, monthly_profit = monthly_profit - 1 "
        f"where {ONE_EXEC}",
        psycopg.errors.CheckViolation,
        "total_operational_cost_is_infrastructure_plus_email",
    ),
    "margin_ratio_not_recomputable": (
        f"update {EXEC} set gross_margin_ratio = gross_margin_ratio + 0.01 where {ONE_EXEC}",
        psycopg.errors.CheckViolation,
        "gross_margin_ratio_is_revenue_over_cost",
    ),
    "score_out_of_bounds": (
        f"update {EXEC} set cost_efficiency_score = 100.01 where {ONE_EXEC}",
        psycopg.errors.CheckViolation,
        "cost_efficiency_score_is_margin_percent_within_0_100",
    ),
    "health_status_against_thresholds": (
        f"update {EXEC} set business_health_status = case business_health_status "
        f"when 'Excellent' then 'Good' else 'Excellent' end where {ONE_EXEC}",
        psycopg.errors.CheckViolation,
        "business_health_status_follows_thresholds",
    ),
    "allocation_cost_per_email_includes_payments": (
        f"update {ALLOC} set cost_per_email_delivered = round((total_monthly_cost + "
        f"payments_collected) / emails_sent_last_30_days, 4) where emails_sent_last_30_days > 0 "
        "and payments_collected > 0",
        psycopg.errors.CheckViolation,
        "cost_per_email_delivered_is_cost_over_emails",
    ),
    "allocation_profit_is_not_payments_minus_cost": (
        f"update {ALLOC} set monthly_profit = price_monthly - total_monthly_cost "
        f"where price_monthly <> payments_collected",
        psycopg.errors.CheckViolation,
        "monthly_profit_is_payments_minus_cost",
    ),
    "daily_fact_profit_is_not_revenue_minus_cost": (
        f"update {FACT} set monthly_profit = monthly_profit - 1 where {ONE_FACT}",
        psycopg.errors.CheckViolation,
        "monthly_profit_is_revenue_minus_cost",
    ),
    "daily_fact_health_status_against_thresholds": (
        f"update {FACT} set business_health_status = 'Monitor' "
        f"where business_health_status <> 'Monitor'",
        psycopg.errors.CheckViolation,
        "business_health_status_follows_thresholds",
    ),
    "negative_cost": (
        f"update {ALLOC} set total_email_service_cost = -1, total_monthly_cost = "
        f"total_infrastructure_cost - 1 where {ONE_ALLOC}",
        psycopg.errors.CheckViolation,
        "total_email_service_cost",
    ),
    "missing_revenue": (
        f"update {EXEC} set monthly_subscription_revenue = null where {ONE_EXEC}",
        psycopg.errors.NotNullViolation,
        "monthly_subscription_revenue",
    ),
    "unknown_health_status": (
        f"update {EXEC} set business_health_status = 'Fine' where {ONE_EXEC}",
        psycopg.errors.CheckViolation,
        "business_health_status",
    ),
}

# dbt test on what readers see (a plain `dbt test` reads the candidate of the last build)
PUBLISHED = {"publish_stage": "published"}


def test_margin_tests_pass_on_the_built_marts(built: Database) -> None:
    result = built.dbt("test", "--select", "marts", extra_vars=PUBLISHED)
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupted_mart_fails_its_margin_test(built: Database, case: str) -> None:
    statement, failing_test = CORRUPTIONS[case]
    with built.connect() as conn:
        changed = conn.execute(statement).rowcount
    assert changed >= 1
    result = built.dbt(
        "test", "--select", "marts", "--exclude", "test_type:unit", extra_vars=PUBLISHED
    )
    assert result.returncode != 0
    failures = [line for line in result.stdout.splitlines() if "FAIL" in line and " of " in line]
    assert any(failing_test in line for line in failures), "\n".join(failures)


def test_marts_that_are_not_the_daily_facts_as_of_day_fail_the_contract_test(
    built: Database,
) -> None:
    """assert_daily_fact_matches_marts: a column that differs for one tenant, and a tenant
    the fact lacks on the as-of day, are two failing rows."""
    first, second = (
        row[0] for row in built.query(f"select tenant_id from {EXEC} order by tenant_id limit 2")
    )
    with built.connect() as conn:
        edited = conn.execute(
            f"update {EXEC} set plan_name = plan_name || ' (edited)' where tenant_id = %s",
            (first,),
        ).rowcount
        dropped = conn.execute(
            f"delete from {FACT} where tenant_id = %s and economics_date = %s", (second, ANCHOR)
        ).rowcount
    assert (edited, dropped) == (1, 1)
    result = built.dbt("test", "--select", "assert_daily_fact_matches_marts", extra_vars=PUBLISHED)
    assert result.returncode != 0
    assert "Got 2 results" in result.stdout, result.stdout[-3000:]


VPS_INTERVALS = "analytics_intermediate.int_vps_cost_intervals"
ONE_LAST_VPS_INTERVAL = (
    f"(vps_instance_id, valid_from_date) = (select vps_instance_id, max(valid_from_date) from "
    f"{VPS_INTERVALS} group by vps_instance_id order by vps_instance_id limit 1)"
)
FIRST_VPS = f"(select vps_instance_id from {VPS_INTERVALS} order by vps_instance_id limit 1)"
ONE_ROW = "select 1"
# each case: the statement, and a query for the number of rows it must change
BROKEN_INTERVALS = {
    "interval_without_a_bound": (
        f"update {VPS_INTERVALS} set valid_to_date = null where {ONE_LAST_VPS_INTERVAL}",
        ONE_ROW,
    ),
    "interval_ending_early": (
        f"update {VPS_INTERVALS} set valid_to_date = '2030-01-01' where {ONE_LAST_VPS_INTERVAL}",
        ONE_ROW,
    ),
    # the key cases: the interval test is the table's primary-key test
    "interval_twice": (
        f"insert into {VPS_INTERVALS} select * from {VPS_INTERVALS} where {ONE_LAST_VPS_INTERVAL}",
        ONE_ROW,
    ),
    # every interval of one VPS: on their own they tile all time
    "intervals_of_no_vps": (
        f"update {VPS_INTERVALS} set vps_instance_id = null where vps_instance_id = {FIRST_VPS}",
        f"select count(*) from {VPS_INTERVALS} where vps_instance_id = {FIRST_VPS}",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_INTERVALS))
def test_a_broken_interval_table_fails_intervals_cover_all_time(built: Database, case: str) -> None:
    """The interval tables have no not_null or primary-key test of their own: a NULL
    bound, a NULL key and a key twice are cases intervals_cover_all_time reports, beside a
    timeline that stops short."""
    statement, rows = BROKEN_INTERVALS[case]
    with built.connect() as conn:
        expected = conn.execute(rows).fetchone()[0]
        assert expected >= 1 and conn.execute(statement).rowcount == expected
    result = built.dbt("test", "--select", "int_vps_cost_intervals", "--exclude", "test_type:unit")
    failures = [line for line in result.stdout.splitlines() if "FAIL" in line and " of " in line]
    assert result.returncode != 0
    assert [line for line in failures if "intervals_cover_all_time" in line], result.stdout[-3000:]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_row_breaking_a_rule_is_refused(built: Database, case: str) -> None:
    statement, error, column = REFUSED[case]
    with built.connect() as conn, pytest.raises(error) as refused:
        conn.execute(statement)
    assert column in str(refused.value)


def test_the_daily_facts_tests_read_the_days_the_run_wrote(built: Database) -> None:
    """An incremental run deletes and inserts only its own days (the as-of date minus the
    lookback, 3 days, to the as-of date), so the fact's tests read those days: an older day
    is as the run that wrote and tested it left it (macros/run_window.sql). Its row rules are
    constraints, which PostgreSQL checks on every row written, on any day."""
    failing = "primary_key_fct_tenant_economics_daily_tenant_id__economics_date"
    day = f"economics_date = date '{ANCHOR}' - 3"
    one_row = (
        f"select * from {FACT} where {day} and tenant_id = "
        f"(select min(tenant_id::text)::uuid from {FACT} where {day})"
    )
    # a tenant twice on a day before this run's window: not read again
    with built.connect() as conn:
        conn.execute(f"create temporary table old_day as {one_row}")
        conn.execute("update old_day set economics_date = economics_date - 10")
        old = conn.execute(
            f"insert into {FACT} select * from old_day union all select * from old_day"
        ).rowcount
    assert old == 2
    old_day = built.dbt("test", "--select", "fct_tenant_economics_daily", extra_vars=PUBLISHED)
    assert old_day.returncode == 0, old_day.stdout[-4000:]
    # the same mistake on a day the run wrote fails the test
    with built.connect() as conn:
        assert conn.execute(f"insert into {FACT} {one_row}").rowcount == 1
    in_window = built.dbt("test", "--select", "fct_tenant_economics_daily", extra_vars=PUBLISHED)
    assert in_window.returncode != 0
    assert any(failing in line and "FAIL" in line for line in in_window.stdout.splitlines())
