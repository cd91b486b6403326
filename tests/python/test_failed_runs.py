"""A refresh that does not publish changes nothing a later run builds on, and one bad morning
never stops the next: the snapshots are published with the marts, a day captured several
times keeps one version, a snapshot poisoned by an earlier version of the project is
repaired, Finance's bad seed rows are named by file and line, no flag shrinks the history,
and a backfill leaves the dashboards at the latest day.

(A failing guard, SIGTERM, a kill while the snapshots are captured and a lost connection are
asserted on the same kept state by test_reliability.py, test_signals.py and
test_publication.py.)"""

from __future__ import annotations

import subprocess
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pmcost import seeds
from pmcost.errors import UsageError
from pmcost.publish import Candidate, Figures, history_breaches, kept_state, rewind_breach
from pmcost.refresh import WITHOUT_UNIT_TESTS, check_dates
from pmcost.settings import Target

from .conftest import ANCHOR, PROJECT, Database, project_copy
from .test_publication import fingerprint, summary

FACT = "analytics.fct_tenant_economics_daily"
PLANS = "analytics_snapshots.snap_app__plans"


def kept(database: Database) -> dict[str, str]:
    """Every row of every table a later run reads (kept_state), by table."""
    with database.connect() as conn:
        return kept_state(conn)


def refresh(
    database: Database, *args: str, as_of: date = ANCHOR, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return database.pmcost(
        "refresh", "--target", "postgres", "--as-of", as_of.isoformat(), *args, env=env
    )


def starter_versions(database: Database) -> list[tuple]:
    """(price, valid from, valid to) of each version of the Starter plan's price."""
    return database.query(
        "select price_monthly, valid_from_date::text, valid_to_date::text "
        "from analytics_intermediate.int_plan_price_versions where plan_name = 'Starter'"
    )


def revenue(database: Database) -> object:
    return database.query(
        "select sum(monthly_subscription_revenue) from analytics.executive_business_summary"
    )[0][0]


def test_a_bad_row_then_its_fix_publishes_and_the_day_keeps_one_version(built: Database) -> None:
    """Finding 1 of the first review: the marts kept yesterday, but the daily fact and the
    anomalies were rebuilt from the broken data; and a snapshot version captured by the
    failed run then failed every later one."""
    before, published, revenue_before = kept(built), fingerprint(built), revenue(built)
    assert "analytics_snapshots.snap_app__plans" in before
    assert "analytics_publication.published_runs" in before and FACT in before

    # the morning's bad row: the refresh fails and changes nothing a later run reads
    built.query("update plans set price_monthly = null where name = 'Starter' returning 1")
    failed = refresh(built)
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr
    assert "plan_without_price" in failed.stderr and "nothing was published" in failed.stderr
    assert kept(built) == before and fingerprint(built) == published  # the same tables too
    report = summary(built)
    assert report["outcome"] == "failed" and report["exit_code"] == 1
    assert report["tests"]["failed"] >= 1 and report["failures"]
    # and no executive report (nor the docs site beside it): nothing was published
    assert report["reports"] == [] and not (built.work_dir / "reports").exists()
    # (plain dbt keeps the same promise: test_publication's
    # test_plain_dbt_build_never_changes_published_tables compares the same kept state)

    # the row fixed, first to another price, then back to the first one, each published the
    # same day (a build and a publish, as a refresh makes them): the day has one version,
    # the last published, and the interval tests hold (each build passes)
    built.query("update plans set price_monthly = 35.00 where name = 'Starter' returning 1")
    built.build()
    assert revenue(built) != revenue_before
    assert starter_versions(built) == [(Decimal("35.00"), "-infinity", "infinity")]
    built.query("update plans set price_monthly = 29.00 where name = 'Starter' returning 1")
    built.build()
    assert revenue(built) == revenue_before
    assert starter_versions(built) == [(Decimal("29.00"), "-infinity", "infinity")]
    # the snapshot keeps the three published captures of the day (29.00, 35.00, 29.00)
    assert len(built.query(f"select from {PLANS} where plan_name = 'Starter'")) == 3


def _poison(database: Database) -> None:
    """What an earlier version of the project left after a failed refresh: a version of the
    Starter plan without a price, captured straight into the published snapshot by a run
    that never published."""
    database.execute(
        f"with current_version as (update {PLANS} set dbt_valid_to = localtimestamp "
        "where plan_name = 'Starter' and dbt_valid_to is null returning *) "
        f"insert into {PLANS} select plan_id, plan_name, null, currency_code, captured_for_date, "
        "md5(random()::text), localtimestamp, localtimestamp, null from current_version"
    )


def test_a_snapshot_poisoned_by_an_earlier_version_is_repaired(built: Database) -> None:
    clean = kept(built)[PLANS]
    _poison(built)
    assert kept(built)[PLANS] != clean
    # the documented command repairs the published snapshot in place
    repaired = built.pmcost("snapshots", "repair", "--target", "postgres")
    assert repaired.returncode == 0, repaired.stdout[-3000:] + repaired.stderr
    assert "removed 1 version(s)" in repaired.stdout
    assert kept(built)[PLANS] == clean
    # and a refresh repairs its copy by itself: the build passes and publishes the clean
    # one; versions a published run captured are never removed
    _poison(built)
    built.execute("create table analytics_snapshots.finance_notes as select 1 as note")
    result = built.build()
    assert "snapshot repair: removed 1 version(s)" in result.stdout
    assert kept(built)[PLANS] == clean
    # a table someone keeps beside the snapshots is moved across the switch, never dropped
    assert built.query("select note from analytics_snapshots.finance_notes") == [(1,)]


def test_bad_rows_in_finance_seeds_are_named_by_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "seeds"
    folder.mkdir()
    for path in (PROJECT / "seeds").glob("*.csv"):
        (folder / path.name).write_text(path.read_text())
    assert seeds.problems(folder) == []
    prices = folder / "vps_price_list.csv"
    lines = prices.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[2], "12,5")  # a decimal comma: 6 values
    lines[3] = ",".join([*lines[3].split(",")[:2], "-3.00", *lines[3].split(",")[3:]])
    lines[4] = lines[4].replace(",annually,", ",yearly,")
    lines.append(lines[1])  # a duplicate of line 2
    prices.write_text("\n".join(lines) + "\n")
    (folder / "cost_assumptions.csv").write_text(
        "dedicated_ip_monthly_cost_usd,effective_date,source_note\n4.99,2025-13-01,typo\n"
    )
    (folder / "smtp_ip_cost_overrides.csv").write_text(
        "smtp_ip_id,monthly_cost_usd,reason\nnot-a-uuid,,bundle\n"
    )
    found = "\n".join(seeds.problems(folder))
    assert "seeds/vps_price_list.csv line 3" in found and "has 6 values, not 5" in found
    assert "seeds/vps_price_list.csv line 4" in found and "'-3.00' is negative" in found
    assert "line 5" in found and "'yearly' is not in seeds/billing_cycles.csv" in found
    assert (
        f"line {len(lines)}" in found
        and "the same plan_code/billing_cycle/effective_date as line 2" in found
    )
    assert "seeds/cost_assumptions.csv line 2 (2025-13-01)" in found and "not a date" in found
    assert "seeds/smtp_ip_cost_overrides.csv line 2" in found
    assert "not a UUID" in found and "monthly_cost_usd is empty" in found
    (folder / "billing_cycles.csv").write_text("cycle,months\n")
    assert "seeds/billing_cycles.csv line 1: the columns are cycle,months" in "\n".join(
        seeds.problems(folder)
    )


def test_a_bad_seed_row_fails_the_refresh_and_its_correction_is_published(
    built: Database, tmp_path: Path
) -> None:
    project = project_copy(tmp_path)
    assumptions = project / "seeds" / "cost_assumptions.csv"
    good = assumptions.read_text()
    day = ANCHOR.isoformat()
    assumptions.write_text(good + f"5.4.9,{day},new contract\n")
    before = kept(built)
    env = {"PMCOST_PROJECT_DIR": str(project)}
    failed = refresh(built, env=env)
    assert failed.returncode == 1
    assert (
        f"seeds/cost_assumptions.csv line 3 ({day}): dedicated_ip_monthly_cost_usd" in failed.stderr
    )
    assert "nothing was built or published" in failed.stderr
    assert kept(built) == before
    assumptions.write_text(good + f"5.49,{day},new contract\n")
    assert seeds.problems(project / "seeds") == []
    built.build("--project-dir", str(project))  # the refresh's build and publish
    assert built.query(
        "select dedicated_ip_monthly_cost_usd from analytics_snapshots.snap_cost_assumptions "
        "where effective_date = %s",
        (ANCHOR,),
    ) == [(Decimal("5.49"),)]
    # the day's cost of a dedicated IP is the corrected constant
    assert built.query(
        "select distinct monthly_cost from analytics.resource_cost_intervals "
        "where resource_type = 'smtp_ip' and cost_source = 'default_constant' "
        "and %s >= valid_from_date and %s < valid_to_date",
        (ANCHOR, ANCHOR),
    ) == [(Decimal("5.49"),)]


def test_no_full_refresh_shrinks_the_history(built: Database) -> None:
    # a 7-day history: the lookback's four days, and before them copies of its first day
    # (what they hold does not matter: the full refresh computes every day again)
    first, lookback = ANCHOR - timedelta(days=6), ANCHOR - timedelta(days=3)
    built.extend_history_back(lookback, first)
    before = kept(built)
    # plain dbt: the run's window would start later than the history: refused, nothing written
    plain = built.dbt("build", "--full-refresh", *WITHOUT_UNIT_TESTS)
    assert plain.returncode != 0
    assert f"its published history starts on {first}" in plain.stdout
    assert f'history_start: "{first}"' in plain.stdout and "--history-start" in plain.stdout
    assert kept(built) == before
    # pmcost: a full refresh rebuilds every day from the history's first day
    result = refresh(built, "--full-refresh")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert f"from its first published day, {first}" in result.stdout
    assert built.query(
        f"select min(economics_date), count(distinct economics_date) from {FACT}"
    ) == [(first, 7)]


def _candidate() -> Candidate:
    return Candidate(
        schema="analytics_candidate",
        published_schema="analytics",
        invocation_id="x",
        as_of_date=ANCHOR.isoformat(),
        app_schema="public",
        usage_roles=[],
        guards={"max_history_loss": 0.2},
        models=[],
        tables=[],
        app_tables=[],
    )


def test_the_history_guard_names_lost_days_and_rows() -> None:
    previous = Figures(
        rows={"fct_tenant_economics_daily": 1000},
        history={"first_day": "2026-09-01", "last_day": "2026-11-20"},
    )
    kept_history = Figures(
        rows={"fct_tenant_economics_daily": 1010},
        history={"first_day": "2026-09-01", "last_day": "2026-11-21"},
    )
    assert history_breaches(kept_history, previous, {"max_history_loss": 0.2}, _candidate()) == []
    shrunk = Figures(
        rows={"fct_tenant_economics_daily": 40},
        history={"first_day": "2026-11-17", "last_day": "2026-11-20"},
    )
    lines = history_breaches(shrunk, previous, {"max_history_loss": 0.2}, _candidate())
    assert len(lines) == 2
    assert "history starts 2026-11-17, last published run 2026-09-01 (77 days lost" in lines[0]
    assert "--history-start 2026-09-01" in lines[0]
    assert "40 rows, last published run 1,000" in lines[1]
    assert "var publish_max_history_loss" in lines[1]


def test_a_backfill_keeps_the_marts_at_the_latest_published_day(built: Database) -> None:
    dashboard = "select distinct dashboard_date from analytics.executive_business_summary"
    assert built.query(dashboard) == [(ANCHOR,)]
    backfill = ANCHOR - timedelta(days=6)
    result = refresh(built, as_of=backfill)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert built.query(dashboard) == [(ANCHOR,)]
    assert built.query(f"select min(economics_date), max(economics_date) from {FACT}") == [
        (backfill - timedelta(days=3), ANCHOR)
    ]


def test_the_publish_refuses_to_move_the_marts_back_unless_asked() -> None:
    """Plain dbt + `pmcost publish` keeps the promise: a candidate built as of a past day is
    a guard breach (`pmcost publish --rewind-marts` accepts it)."""
    candidate = _candidate()
    assert rewind_breach(candidate, ANCHOR) is None
    assert rewind_breach(candidate, None) is None
    line = rewind_breach(candidate, ANCHOR + timedelta(days=1))
    assert line is not None
    assert (
        f"the marts would be as of {ANCHOR}, last published run {ANCHOR + timedelta(days=1)}"
        in line
    )
    assert "--rewind-marts" in line


def test_the_as_of_bound_reads_every_dated_table(built: Database) -> None:
    """Companies loaded with created_at set to the load time (a restored dump) do not hide
    the months of subscriptions, payments and usage before it."""
    target = Target(name="postgres", app_schema="public")
    first_usage = built.query("select min(period_start) from billing_analytics")[0][0]
    built.execute("update companies set created_at = now()")
    with built.connect() as conn:
        check_dates(conn, target, first_usage, None)  # accepted
        with pytest.raises(UsageError, match=r"before the first day the data describes \("):
            check_dates(conn, target, date(2000, 1, 1), None)
