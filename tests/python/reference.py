"""An independent, pure-Python computation of SPEC.md's mart definitions.

It reads the raw application tables and the seed CSVs (not the dbt models), so a test that
compares it with the marts checks the SQL against the specification, not against itself.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

COST_BEARING_IP_STATUSES = {"active", "warmed", "warming"}
ZERO = Decimal("0")


def _round(value: Decimal, places: int) -> Decimal:
    """PostgreSQL's round(numeric, n): half away from zero."""
    quantum = Decimal(1).scaleb(-places)
    if value < 0:
        return -((-value).quantize(quantum, rounding=ROUND_HALF_UP))
    return value.quantize(quantum, rounding=ROUND_HALF_UP)


def _norm(value: str | None) -> str | None:
    return None if value is None else value.strip().lower()


def _read_seed(seeds_dir: Path, name: str) -> list[dict[str, str]]:
    with (seeds_dir / f"{name}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass
class Reference:
    executive: dict[Any, dict[str, Any]] = field(default_factory=dict)
    allocation: dict[Any, dict[str, Any]] = field(default_factory=dict)
    vps_cost: dict[Any, tuple[Decimal, str]] = field(default_factory=dict)
    ip_cost: dict[Any, tuple[Decimal, str]] = field(default_factory=dict)
    total_modeled_cost: Decimal = ZERO


def load_tables(conn: psycopg.Connection, schema: str = "public") -> dict[str, list[dict]]:
    tables = [
        "companies",
        "plans",
        "subscriptions",
        "vps_instances",
        "smtp_ip_addresses",
        "payments",
        "billing_analytics",
    ]
    with conn.cursor(row_factory=dict_row) as cur:
        return {
            table: list(cur.execute(f'select * from "{schema}"."{table}"').fetchall())
            for table in tables
        }


def compute(tables: dict[str, list[dict]], seeds_dir: Path, as_of: date) -> Reference:
    ref = Reference()

    # -- price list and constants, effective on the as-of date ----------------------------
    months = {
        row["billing_cycle"].strip().lower(): int(row["months_per_cycle"])
        for row in _read_seed(seeds_dir, "billing_cycles")
    }
    latest: dict[tuple[str, str], tuple[date, Decimal]] = {}
    for row in _read_seed(seeds_dir, "vps_price_list"):
        effective = date.fromisoformat(row["effective_date"])
        key = (row["plan_code"].strip().lower(), row["billing_cycle"].strip().lower())
        if effective <= as_of and (key not in latest or effective > latest[key][0]):
            latest[key] = (effective, Decimal(row["cycle_price_usd"]))
    monthly_price = {
        key: _round(price / months[key[1]], 2)
        for key, (_, price) in latest.items()
        if key[1] in months
    }
    assumptions = sorted(
        (date.fromisoformat(row["effective_date"]), Decimal(row["dedicated_ip_monthly_cost_usd"]))
        for row in _read_seed(seeds_dir, "cost_assumptions")
    )
    constant = [value for effective, value in assumptions if effective <= as_of][-1]
    overrides = {
        row["smtp_ip_id"]: Decimal(row["monthly_cost_usd"])
        for row in _read_seed(seeds_dir, "smtp_ip_cost_overrides")
    }

    # -- resources ------------------------------------------------------------------------
    vps_tenant = {vps["id"]: vps["tenant_id"] for vps in tables["vps_instances"]}
    tenant_infra: dict[Any, Decimal] = defaultdict(lambda: ZERO)
    tenant_email: dict[Any, Decimal] = defaultdict(lambda: ZERO)
    for vps in tables["vps_instances"]:
        if _norm(vps["status"]) != "active":
            continue
        record = vps.get("approximate_cost")
        if record is not None and record > 0:
            cost, source = record, "record"
        else:
            key = (_norm(vps["plan_code"]), _norm(vps["billing_cycle"]))
            cost, source = monthly_price[key], "price_list"  # KeyError = unpriced: a bug here
        ref.vps_cost[vps["id"]] = (cost, source)
        ref.total_modeled_cost += cost
        if vps["tenant_id"] is not None:
            tenant_infra[vps["tenant_id"]] += cost
    for ip in tables["smtp_ip_addresses"]:
        if _norm(ip["status"]) not in COST_BEARING_IP_STATUSES:
            continue
        record = ip.get("approximate_cost")
        dedicated = True if ip["is_dedicated"] is None else ip["is_dedicated"]
        if str(ip["id"]) in overrides:
            cost, source = overrides[str(ip["id"])], "finance_override"
        elif record is not None and record > 0:
            cost, source = record, "record"
        elif dedicated:
            cost, source = constant, "default_constant"
        else:
            cost, source = record or ZERO, "record"
        ref.ip_cost[ip["id"]] = (cost, source)
        ref.total_modeled_cost += cost
        tenant = vps_tenant.get(ip["vps_instance_id"])
        if tenant is not None:
            tenant_email[tenant] += cost

    # -- subscriptions, payments, emails ------------------------------------------------------
    plans = {plan["id"]: plan for plan in tables["plans"]}
    companies = {company["id"]: company for company in tables["companies"]}
    active = [sub for sub in tables["subscriptions"] if _norm(sub["status"]) == "active"]
    active_by_id = {sub["id"]: sub for sub in active}
    by_tenant: dict[Any, list[dict]] = defaultdict(list)
    for sub in active:
        by_tenant[sub["tenant_id"]].append(sub)
    sub_tenant = {sub["id"]: sub["tenant_id"] for sub in tables["subscriptions"]}

    payments: dict[Any, Decimal] = defaultdict(lambda: ZERO)
    for payment in tables["payments"]:
        sub = active_by_id.get(payment["subscription_id"])
        if (
            sub is not None
            and _norm(payment["status"]) == "succeeded"
            and (payment["currency"] or "").strip().upper() == "USD"
            and sub["current_period_start"] <= payment["billing_period_start"] <= as_of
        ):
            payments[sub["tenant_id"]] += payment["amount"]

    window_start = as_of - timedelta(days=30)
    emails: dict[Any, int] = defaultdict(int)
    for row in tables["billing_analytics"]:
        tenant = sub_tenant.get(row["subscription_id"])
        if tenant is not None and window_start <= row["period_start"] <= as_of:
            emails[tenant] += row["emails_sent"] or 0

    def price(sub: dict) -> Decimal | None:
        plan = plans.get(sub["plan_id"])
        return None if plan is None else plan["price_monthly"]

    def usd(sub: dict) -> bool:
        plan = plans.get(sub["plan_id"])
        return plan is not None and (plan["currency"] or "").strip().upper() == "USD"

    def name_of(sub: dict) -> str | None:
        plan = plans.get(sub["plan_id"])
        return None if plan is None else ((plan["name"] or "").strip() or None)

    for tenant, subs in by_tenant.items():
        revenue = sum((price(sub) for sub in subs if usd(sub) and price(sub) is not None), ZERO)
        # highest price first (NULL last), then plan name (NULL last), then id: as the SQL
        primary = sorted(
            subs,
            key=lambda sub: (
                price(sub) is None,
                -(price(sub) or ZERO),
                name_of(sub) is None,
                name_of(sub) or "",
                str(sub["id"]),
            ),
        )[0]
        plan_name = name_of(primary)
        company = companies.get(tenant)
        company_name = None if company is None else ((company["name"] or "").strip() or None)
        infra, email = tenant_infra.get(tenant, ZERO), tenant_email.get(tenant, ZERO)
        cost = infra + email
        if revenue > cost * 2:
            status = "Excellent"
        elif revenue > cost * Decimal("1.5"):
            status = "Good"
        elif revenue > cost:
            status = "Monitor"
        else:
            status = "Critical Action Required"
        ref.executive[tenant] = {
            "tenant_id": tenant,
            "company_name": company_name,
            "plan_name": plan_name,
            "current_period_start": primary["current_period_start"],
            "current_period_end": primary["current_period_end"],
            "monthly_subscription_revenue": revenue,
            "infrastructure_costs": infra,
            "email_service_costs": email,
            "gross_margin_ratio": _round(revenue / cost, 2) if cost > 0 else ZERO,
            "cost_efficiency_score": (
                min(Decimal(100), max(ZERO, _round((revenue - cost) / revenue * 100, 2)))
                if revenue > 0
                else ZERO
            ),
            "total_operational_cost": cost,
            "business_health_status": status,
            "dashboard_date": as_of,
            "total_infrastructure_cost": infra,
            "total_email_service_cost": email,
            "total_monthly_cost": cost,
            "monthly_profit": revenue - cost,
        }
        collected = payments.get(tenant, ZERO)
        sent = emails.get(tenant, 0)
        ref.allocation[tenant] = {
            "tenant_id": tenant,
            "company_name": company_name,
            "plan_name": ref.executive[tenant]["plan_name"],
            "price_monthly": revenue,
            "total_infrastructure_cost": infra,
            "total_email_service_cost": email,
            "emails_sent_last_30_days": sent,
            "cost_per_email_delivered": _round(cost / sent, 4) if sent > 0 else ZERO,
            "total_monthly_cost": cost,
            "payments_collected": collected,
            "monthly_profit": collected - cost,
            "business_efficiency_ratio": _round(collected / cost, 2) if cost > 0 else ZERO,
            "as_of_date": as_of,
        }
    return ref
