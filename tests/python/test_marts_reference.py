"""The marts against an independent pure-Python computation of SPEC.md, to the cent.

Random application data (two seeds, the demo generator's mess plus Finance record values,
non-dedicated IPs and a non-USD plan) is built with `dbt build`; every column of every row of
both marts must equal the reference, and the guide's queries must answer what the reference
says they should.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from psycopg.rows import dict_row

from . import reference
from .conftest import PROJECT, Database

ANALYSES = PROJECT / "analyses"


def _finance_mess(conn: psycopg.Connection, seed: int) -> None:
    """What Finance and the application add after the migration: record values and oddities."""
    rng = random.Random(seed)
    vps_ids = [row[0] for row in conn.execute("select id from vps_instances order by id")]
    for vps_id in rng.sample(vps_ids, k=len(vps_ids) // 3):
        cents = rng.choice((0, rng.randrange(500, 40000)))
        conn.execute(
            "update vps_instances set approximate_cost = %s where id = %s",
            (Decimal(cents) / 100, vps_id),
        )
    ip_ids = [row[0] for row in conn.execute("select id from smtp_ip_addresses order by id")]
    for ip_id in rng.sample(ip_ids, k=len(ip_ids) // 5):
        conn.execute(
            "update smtp_ip_addresses set approximate_cost = %s, is_dedicated = %s where id = %s",
            (Decimal(rng.randrange(0, 1500)) / 100, rng.random() < 0.7, ip_id),
        )
    conn.execute("update smtp_ip_addresses set approximate_cost = null where id = %s", (ip_ids[0],))
    euro_plan = conn.execute(
        "insert into plans (id, name, price_monthly, currency) "
        "values (gen_random_uuid(), 'Euro Pro', 250.00, 'EUR') returning id"
    ).fetchone()
    assert euro_plan is not None
    conn.execute(
        "update subscriptions set plan_id = %s where id in (select id from "
        "subscriptions where status = 'active' order by id limit 3)",
        (euro_plan[0],),
    )


def _fetch(conn: psycopg.Connection, table: str) -> dict[object, dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"select * from analytics.{table}").fetchall()
    return {row["tenant_id"]: row for row in rows}


def _guide_sql(name: str) -> str:
    """The analysis exactly as the guide wrote it: ref() back to the bare mart name."""
    text = (ANALYSES / f"{name}.sql").read_text()
    return re.sub(r"\{\{\s*ref\('(\w+)'\)\s*\}\}", r"\1", text)


def _guide(conn: psycopg.Connection, name: str) -> list[dict]:
    conn.execute("set search_path to analytics")
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(_guide_sql(name)).fetchall())


def _check_guide_queries(conn: psycopg.Connection, ref: reference.Reference) -> None:
    executive = list(ref.executive.values())
    allocation = list(ref.allocation.values())

    health = _guide(conn, "daily_executive_health_check")
    expected = Counter(
        (
            row["company_name"],
            row["plan_name"],
            row["business_health_status"],
            row["cost_efficiency_score"],
            row["gross_margin_ratio"],
            row["monthly_subscription_revenue"],
            row["total_operational_cost"],
            row["monthly_subscription_revenue"] - row["total_operational_cost"],
        )
        for row in executive
    )
    assert Counter(tuple(row.values()) for row in health) == expected
    scores = [row["cost_efficiency_score"] for row in health]
    assert scores == sorted(scores, reverse=True)

    optimization = _guide(conn, "cost_optimization_opportunities")
    expected_opt = Counter()
    for row in executive:
        if row["business_health_status"] == "Excellent":
            continue
        score = row["cost_efficiency_score"]
        category = (
            "High Optimization Potential"
            if score < 50
            else "Moderate Optimization Potential"
            if score < 75
            else "Well Optimized"
        )
        expected_opt[
            (
                row["company_name"],
                row["business_health_status"],
                score,
                category,
                row["monthly_subscription_revenue"] * 2 - row["total_operational_cost"],
            )
        ] += 1
    assert Counter(tuple(row.values()) for row in optimization) == expected_opt
    opportunities = [row["optimization_opportunity"] for row in optimization]
    assert opportunities == sorted(opportunities, reverse=True)

    by_plan = {row["plan_name"]: row for row in _guide(conn, "monthly_cost_analysis_by_tenant")}
    groups: dict[str | None, list[dict]] = {}
    for row in allocation:
        groups.setdefault(row["plan_name"], []).append(row)
    assert set(by_plan) == set(groups)
    for plan, rows in groups.items():
        got = by_plan[plan]
        assert got["tenant_count"] == len(rows)
        for column, source in (
            ("avg_infrastructure_cost", "total_infrastructure_cost"),
            ("avg_email_service_cost", "total_email_service_cost"),
            ("avg_total_cost", "total_monthly_cost"),
            ("avg_monthly_profit", "monthly_profit"),
            ("avg_efficiency_ratio", "business_efficiency_ratio"),
        ):
            mean = sum(row[source] for row in rows) / len(rows)
            assert abs(got[column] - mean) < Decimal("0.000001"), (plan, column)

    per_email = _guide(conn, "cost_per_email_analysis")
    expected_email = Counter()
    for row in allocation:
        cpe = row["cost_per_email_delivered"]
        if cpe <= 0:
            continue
        category = (
            "Highly Efficient"
            if cpe < Decimal("0.01")
            else "Efficient"
            if cpe < Decimal("0.02")
            else "Moderate"
            if cpe < Decimal("0.05")
            else "Needs Optimization"
        )
        expected_email[
            (
                row["company_name"],
                row["plan_name"],
                cpe,
                row["total_monthly_cost"],
                row["monthly_profit"],
                row["business_efficiency_ratio"],
                category,
            )
        ] += 1
    assert Counter(tuple(row.values()) for row in per_email) == expected_email

    accuracy = _guide(conn, "test_business_view_accuracy")
    assert len(accuracy) == min(5, len(executive))
    for row in accuracy:
        wanted = ref.executive[row["tenant_id"]]
        assert row == {key: wanted[key] for key in row}

    validation = _guide(conn, "validate_calculations")
    assert len(validation) == len(executive)
    assert {(row["cost_validation"], row["profit_validation"]) for row in validation} == {
        ("PASS", "PASS")
    }


# Two seeds of 375 tenants each: the variety is per tenant (each draws its own plan, fleet,
# payments, usage and Finance's values), so it grows with the tenants, while each seed costs a
# whole build; the second seed varies what is drawn once per data set (the Euro plan's
# subscriptions, the IP with no value).
@pytest.mark.parametrize("seed", [7, 2026])
def test_marts_equal_the_reference_to_the_cent(database: Database, seed: int) -> None:
    with database.connect() as conn:
        today = conn.execute("select current_date").fetchone()[0]  # the guide's CURRENT_DATE
    assert isinstance(today, date)
    database.load_demo(tenants=375, seed=seed, anchor=today)
    database.apply_ddl()
    with database.connect() as conn:
        _finance_mess(conn, seed)
    database.build(as_of=today)

    with database.connect() as conn:
        ref = reference.compute(reference.load_tables(conn), PROJECT / "seeds", today)
        executive = _fetch(conn, "executive_business_summary")
        allocation = _fetch(conn, "business_cost_allocation")
        reconciliation = conn.execute(
            "select sum(monthly_cost) filter (where is_allocated), sum(monthly_cost) "
            "from analytics.cost_allocation_reconciliation"
        ).fetchone()

        assert len(ref.executive) > 150
        assert set(executive) == set(ref.executive)
        for tenant, expected in ref.executive.items():
            assert executive[tenant] == expected, tenant
        assert set(allocation) == set(ref.allocation)
        for tenant, expected in allocation.items():
            assert expected == ref.allocation[tenant], tenant
        # every modeled dollar is either allocated to a tenant in the marts or unallocated
        assert reconciliation == (
            sum(row["total_operational_cost"] for row in ref.executive.values()),
            ref.total_modeled_cost,
        )
        _check_guide_queries(conn, ref)
