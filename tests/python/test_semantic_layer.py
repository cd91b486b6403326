"""MetricFlow over the daily history: what `mf query` answers per week is what sums over
fct_tenant_economics_daily give, to the cent, and its as-of week is the executive summary."""

from __future__ import annotations

import csv
import json
import subprocess
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from pmcost.dbt import day_environment

from .conftest import ANCHOR, BIN, PUBLISHED_VARS, Database, project_copy

CENT = Decimal("0.01")


def test_weekly_metrics_through_metricflow_equal_sums_over_the_daily_fact(
    built: Database, tmp_path: Path
) -> None:
    built.build(history_start=ANCHOR - timedelta(days=62))  # nine weeks, as `make build`
    # mf reads <project>/target/semantic_manifest.json: a copy of the project, parsed for
    # the published relations as a refresh's last step parses (the same vars as its docs,
    # from the kept parse state; test_analysts runs the same with no vars, as analysts do),
    # and MetricFlow pointed at production (DBT_TARGET=prod)
    project = project_copy(tmp_path)
    env = built.env() | day_environment(ANCHOR) | {"DBT_TARGET": "prod"}
    env.pop("DBT_TARGET_PATH")
    assert built.parse_cache is not None
    built.parse_cache.seed(built.name, PUBLISHED_VARS, project / "target" / "partial_parse.msgpack")
    parse = subprocess.run(
        [str(BIN / "dbt"), "parse", "--vars", json.dumps(PUBLISHED_VARS)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert parse.returncode == 0, parse.stdout[-3000:]
    answer = tmp_path / "weekly.csv"
    query = subprocess.run(
        [
            str(BIN / "mf"),
            "query",
            "--metrics",
            "revenue,modeled_cost,gross_margin,cost_per_email,gross_profit,margin_pct",
            "--group-by",
            "metric_time__week",
            "--order",
            "metric_time__week",
            "--csv",
            str(answer),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert query.returncode == 0 and answer.is_file(), query.stdout[-3000:] + query.stderr
    with answer.open() as handle:
        weeks = {
            date.fromisoformat(row["metric_time__week"][:10]): row for row in csv.DictReader(handle)
        }

    # by hand: each week's value is its last day's sum over the tenants (semi-additive)
    expected = built.query(
        """
        with last_days as (
            select date_trunc('week', economics_date)::date as week, max(economics_date) as day
            from analytics.fct_tenant_economics_daily
            group by 1
        )
        select
            last_days.week,
            sum(fact.monthly_subscription_revenue),
            sum(fact.total_monthly_cost),
            sum(fact.emails_sent_last_30_days)
        from last_days
        inner join analytics.fct_tenant_economics_daily as fact
            on fact.economics_date = last_days.day
        group by last_days.week
        order by last_days.week
        """
    )
    assert len(expected) >= 8  # a trend: nine weeks of history, the as-of week last
    assert sorted(weeks) == [week for week, *_ in expected]
    for week, revenue, cost, emails in expected:
        row = weeks[week]
        assert Decimal(row["revenue"]).quantize(CENT) == revenue, week
        assert Decimal(row["modeled_cost"]).quantize(CENT) == cost, week
        assert abs(float(row["gross_margin"]) - float(revenue / cost)) < 1e-9, week
        assert abs(float(row["cost_per_email"]) - float(cost / emails)) < 1e-12, week
        # the executive report's derived metrics: gross margin in USD and as a share
        assert Decimal(row["gross_profit"]).quantize(CENT) == revenue - cost, week
        assert abs(Decimal(row["margin_pct"]) - (revenue - cost) / revenue) < Decimal("1e-12")

    # the as-of week ends on the as-of day: the executive summary's totals
    summary_revenue, summary_cost = built.query(
        "select sum(monthly_subscription_revenue), sum(total_operational_cost) "
        "from analytics.executive_business_summary"
    )[0]
    as_of_week = weeks[max(weeks)]
    assert Decimal(as_of_week["revenue"]).quantize(CENT) == summary_revenue
    assert Decimal(as_of_week["modeled_cost"]).quantize(CENT) == summary_cost
