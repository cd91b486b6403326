"""Bad application data, injected into a copy of the built demo, each caught with its own test.

Each case names the dbt test that must report it and whether it fails the build (a number in
a mart would be wrong) or warns (the row is left out or reported as unallocated).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from pmcost.refresh import WITHOUT_UNIT_TESTS

from .conftest import ANCHOR, Database, project_copy


@dataclass(frozen=True)
class Case:
    statements: tuple[str, ...]
    test_name: str
    fails: bool  # True: the build fails; False: it passes with a warning


ONE_ACTIVE_SUB = "(select id from subscriptions where status = 'active' order by id limit 1)"
ONE_ACTIVE_VPS = "(select id from vps_instances where status = 'active' order by id limit 1)"
# a usage row of the as-of day: every window of the run reads it (the usage rows' tests read
# int_billing_analytics_flagged_rows, only the rows the run reads; the test
# test_billing_tests_read_the_rows_the_run_reads shows where that ends)
ONE_BILLING_ROW = (
    f"(select id from billing_analytics where period_start = date '{ANCHOR}' order by id limit 1)"
)

CASES: dict[str, Case] = {
    "duplicate_company_id": Case(
        (
            "alter table companies drop constraint companies_pkey",
            "insert into companies select * from companies order by id limit 1",
        ),
        "primary_key_stg_app__companies_tenant_id",
        fails=True,
    ),
    # one test checks a key for duplicates and NULLs (macros/generic_tests/primary_key.sql)
    "company_without_id": Case(
        (
            "alter table companies drop constraint companies_pkey",
            "alter table companies alter column id drop not null",
            "update companies set id = null "
            "where id = (select id from companies order by id desc limit 1)",
        ),
        "primary_key_stg_app__companies_tenant_id",
        fails=True,
    ),
    # the database's own key guarantees the largest table's: a migration that drops it, or
    # lets the column be NULL, fails the test that checks it from the catalog
    "duplicate_billing_id": Case(
        (
            "alter table billing_analytics drop constraint billing_analytics_pkey",
            "insert into billing_analytics select * from billing_analytics order by id limit 1",
        ),
        "source_enforced_primary_key_app_billing_analytics_id",
        fails=True,
    ),
    "billing_row_without_id": Case(
        (
            "alter table billing_analytics drop constraint billing_analytics_pkey",
            "create unique index billing_analytics_id on billing_analytics (id)",
            "alter table billing_analytics alter column id drop not null",
        ),
        "source_enforced_primary_key_app_billing_analytics_id",
        fails=True,
    ),
    "unknown_subscription_status": Case(
        (f"update subscriptions set status = 'frozen' where id = {ONE_ACTIVE_SUB}",),
        "subscription_status_unknown",
        fails=False,
    ),
    "unknown_billing_cycle": Case(
        (f"update vps_instances set billing_cycle = 'weekly' where id = {ONE_ACTIVE_VPS}",),
        "vps_billing_cycle_unknown",
        fails=True,
    ),
    "active_vps_without_cost_or_price": Case(
        (f"update vps_instances set plan_code = 'custom-gpu' where id = {ONE_ACTIVE_VPS}",),
        "active_vps_without_record_cost_or_price",
        fails=True,
    ),
    "subscription_of_missing_company": Case(
        (
            f"delete from companies where id = (select tenant_id from subscriptions "
            f"where id = {ONE_ACTIVE_SUB})",
        ),
        "subscription_of_unknown_tenant",
        fails=True,
    ),
    # an active subscription's plan and period are what its revenue and payments are
    # counted by: missing, they would count nothing, silently (the end is shown only)
    "active_subscription_without_plan": Case(
        (f"update subscriptions set plan_id = null where id = {ONE_ACTIVE_SUB}",),
        "active_subscription_without_plan",
        fails=True,
    ),
    "active_subscription_without_period_start": Case(
        (f"update subscriptions set current_period_start = null where id = {ONE_ACTIVE_SUB}",),
        "active_subscription_without_period_start",
        fails=True,
    ),
    "active_subscription_without_period_end": Case(
        (f"update subscriptions set current_period_end = null where id = {ONE_ACTIVE_SUB}",),
        "active_subscription_without_period_end",
        fails=False,
    ),
    "subscription_of_missing_plan": Case(
        (f"update subscriptions set plan_id = gen_random_uuid() where id = {ONE_ACTIVE_SUB}",),
        "subscription_of_unknown_plan",
        fails=True,
    ),
    "vps_of_missing_tenant": Case(
        (f"update vps_instances set tenant_id = gen_random_uuid() where id = {ONE_ACTIVE_VPS}",),
        "vps_of_unknown_tenant",
        fails=True,
    ),
    "ip_on_missing_vps": Case(
        (
            "update smtp_ip_addresses set vps_instance_id = gen_random_uuid() "
            "where id = (select id from smtp_ip_addresses order by id limit 1)",
        ),
        "ip_on_unknown_vps",
        fails=False,
    ),
    "payment_of_missing_subscription": Case(
        (
            "update payments set subscription_id = gen_random_uuid() "
            "where id = (select id from payments order by id limit 1)",
        ),
        "payment_of_unknown_subscription",
        fails=False,
    ),
    "billing_row_of_missing_subscription": Case(
        (
            "update billing_analytics set subscription_id = gen_random_uuid() "
            f"where id = {ONE_BILLING_ROW}",
        ),
        "billing_row_of_unknown_subscription",
        fails=False,
    ),
    "plan_not_in_usd": Case(
        ("update plans set currency = 'EUR' where name = 'Pro'",), "plan_not_in_usd", fails=False
    ),
    "payment_not_in_usd": Case(
        (
            "update payments set currency = 'GBP' "
            "where id = (select id from payments order by id limit 1)",
        ),
        "payment_not_in_usd",
        fails=False,
    ),
    "payment_without_subscription": Case(
        (
            "update payments set subscription_id = null "
            "where id = (select id from payments order by id limit 1)",
        ),
        "payment_without_subscription",
        fails=False,
    ),
    "succeeded_payment_without_period": Case(
        (
            "update payments set billing_period_start = null "
            "where id = (select id from payments where status = 'succeeded' order by id limit 1)",
        ),
        "succeeded_payment_without_period",
        fails=False,
    ),
    "negative_payment_not_a_refund": Case(
        (
            "update payments set amount = -10 "
            "where id = (select id from payments where status = 'succeeded' order by id limit 1)",
        ),
        "payment_negative_and_not_a_refund",
        fails=True,
    ),
    "billing_period_ends_before_it_starts": Case(
        (
            "update billing_analytics set period_end = period_start - 1 "
            f"where id = {ONE_BILLING_ROW}",
        ),
        "billing_period_ends_before_it_starts",
        fails=True,
    ),
    "payment_period_ends_before_it_starts": Case(
        (
            "update payments set billing_period_end = billing_period_start - 1 "
            "where id = (select id from payments order by id limit 1)",
        ),
        "payment_period_ends_before_it_starts",
        fails=True,
    ),
    "subscription_period_ends_before_it_starts": Case(
        (
            f"update subscriptions set current_period_end = current_period_start - 1 "
            f"where id = {ONE_ACTIVE_SUB}",
        ),
        "subscription_period_ends_before_it_starts",
        fails=True,
    ),
    "negative_emails_sent": Case(
        (f"update billing_analytics set emails_sent = -5 where id = {ONE_BILLING_ROW}",),
        "billing_negative_emails_sent",
        fails=True,
    ),
    "emails_sent_missing": Case(
        (f"update billing_analytics set emails_sent = null where id = {ONE_BILLING_ROW}",),
        "billing_emails_sent_missing",
        fails=True,
    ),
    "plan_without_price": Case(
        ("update plans set price_monthly = null where name = 'Pro'",),
        "plan_without_price",
        fails=True,
    ),
    "negative_record_cost_on_a_copy_without_the_check": Case(
        (
            "alter table vps_instances drop constraint chk_vps_approximate_cost_positive",
            f"update vps_instances set approximate_cost = -3 where id = {ONE_ACTIVE_VPS}",
        ),
        "vps_negative_record_cost",
        fails=True,
    ),
}


def _lines_naming(output: str, test_name: str) -> list[str]:
    return [line for line in output.splitlines() if test_name in line]


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_bad_source_is_reported(built: Database, case_name: str) -> None:
    case = CASES[case_name]
    with built.connect() as conn:
        for statement in case.statements:
            conn.execute(statement)
    # the build of what the test reads: its upstream models and every data test on them (the
    # unit tests read fixtures, not this data: test_publication runs them)
    result = built.dbt("build", "--select", f"+{case.test_name}", *WITHOUT_UNIT_TESTS)
    named = _lines_naming(result.stdout, case.test_name)
    if case.fails:
        assert result.returncode != 0, result.stdout[-3000:]
        assert any("FAIL" in line for line in named), result.stdout[-3000:]
        assert f"Failure in test {case.test_name}" in result.stdout
    else:
        assert result.returncode == 0, result.stdout[-3000:]
        assert any("WARN" in line for line in named), result.stdout[-3000:]
        assert f"Warning in test {case.test_name}" in result.stdout


@pytest.mark.parametrize(("days_before", "fails"), [(34, False), (33, True)])
def test_billing_tests_read_the_rows_the_run_reads(
    built: Database, days_before: int, fails: bool
) -> None:
    """A daily run's windows read usage from its first day (as-of minus the 3-day lookback)
    minus 30 days: a negative count 33 days before the as-of date fails its test, one a day
    older is not read by this run, nor tested again (the run that read it tested it)."""
    day = ANCHOR - timedelta(days=days_before)
    with built.connect() as conn:
        changed = conn.execute(
            "update billing_analytics set emails_sent = -1 where id = (select id from "
            "billing_analytics where period_start = %s order by id limit 1)",
            (day,),
        ).rowcount
    assert changed == 1
    result = built.dbt(
        "build",
        "--select",
        "+billing_negative_emails_sent",
        *WITHOUT_UNIT_TESTS,
    )
    assert (result.returncode != 0) is fails, result.stdout[-3000:]
    assert ("Failure in test billing_negative_emails_sent" in result.stdout) is fails


def test_refunds_may_be_negative(built: Database) -> None:
    with built.connect() as conn:
        conn.execute(
            "update payments set amount = -29.00, status = 'refunded' "
            "where id = (select id from payments order by id limit 1)"
        )
    result = built.dbt("build", *WITHOUT_UNIT_TESTS)
    assert result.returncode == 0, result.stdout[-3000:]


def test_empty_usage_table_means_zero_emails_not_an_error(built: Database) -> None:
    with built.connect() as conn:
        conn.execute("delete from billing_analytics")
    built.build()
    assert built.query(
        "select count(*), sum(emails_sent_last_30_days), "
        "sum(cost_per_email_delivered) from analytics.business_cost_allocation"
    )[0][1:] == (0, 0)


def test_changing_the_ip_constant_moves_only_defaulted_ips(built: Database, tmp_path: Path) -> None:
    """Finance edits seeds/cost_assumptions.csv (in a copy of the project) and rebuilds:
    every IP priced by the constant moves, none priced by its own record value does."""
    with built.connect() as conn:
        conn.execute(
            "update smtp_ip_addresses set approximate_cost = 7.25 where id in "
            "(select id from smtp_ip_addresses order by id limit 40)"
        )
    # the build of what the test reads (the IPs' cost intervals, from the seeds and snapshots
    # up), with the data tests on those nodes alone (cautious: not the tests that also read
    # models outside the selection)
    narrow = (
        *("--select", "+int_smtp_ip_cost_intervals", "--indirect-selection", "cautious"),
        *WITHOUT_UNIT_TESTS,
    )
    built.dbt("build", *narrow, check=True)
    before = dict(
        built.query(
            "select smtp_ip_id, monthly_cost || ' ' || cost_source "
            "from analytics_intermediate.int_smtp_ip_cost_intervals "
            f"where valid_from_date <= '{ANCHOR}' and '{ANCHOR}' < valid_to_date"
        )
    )

    project = project_copy(tmp_path)
    assumptions = project / "seeds" / "cost_assumptions.csv"
    assumptions.write_text(assumptions.read_text().replace("4.99,", "6.49,"))
    built.dbt("build", *narrow, "--project-dir", str(project), check=True)
    after = dict(
        built.query(
            "select smtp_ip_id, monthly_cost || ' ' || cost_source "
            "from analytics_intermediate.int_smtp_ip_cost_intervals "
            f"where valid_from_date <= '{ANCHOR}' and '{ANCHOR}' < valid_to_date"
        )
    )

    assert before.keys() == after.keys()
    defaulted = [ip for ip, value in before.items() if value.endswith("default_constant")]
    recorded = [ip for ip, value in before.items() if value.endswith(" record")]
    assert defaulted and any(value == "7.25 record" for value in before.values())
    assert all(before[ip] == "4.99 default_constant" for ip in defaulted)
    assert all(after[ip] == "6.49 default_constant" for ip in defaulted)
    assert all(after[ip] == before[ip] for ip in recorded)


# The two below build the edited seed alone, with the data tests on it: what fails is the seed
# itself. That the whole refresh fails on such a row, names it and publishes the correction,
# is test_failed_runs.py's (test_a_bad_seed_row_fails_the_refresh_and_its_correction_is_published).
SEED_ALONE = ("--select", "vps_price_list", *WITHOUT_UNIT_TESTS)


def test_text_in_a_numeric_seed_column_names_the_seed(built: Database, tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    prices = project / "seeds" / "vps_price_list.csv"
    prices.write_text(prices.read_text().replace("vps-1gb,monthly,8.99,", "vps-1gb,monthly,n/a,"))
    result = built.dbt("build", "--project-dir", str(project), *SEED_ALONE)
    assert result.returncode != 0
    assert "vps_price_list" in result.stdout
    assert 'invalid input syntax for type numeric: "n/a"' in result.stdout


def test_price_list_row_without_a_price_is_an_error(built: Database, tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    prices = project / "seeds" / "vps_price_list.csv"
    prices.write_text(prices.read_text().replace("vps-1gb,monthly,8.99,", "vps-1gb,monthly,,"))
    result = built.dbt("build", "--project-dir", str(project), *SEED_ALONE)
    assert result.returncode != 0
    assert "Failure in test price_list_row_without_price" in result.stdout
