"""Demo data: deterministic, messy in the documented ways, and never overwriting real tables."""

from __future__ import annotations

import hashlib

import pytest

from pmcost import demo_data
from pmcost.errors import PmcostError, UsageError

from .conftest import ANCHOR, Database


def _fingerprint(database: Database) -> str:
    digest = hashlib.sha256()
    for table in demo_data.APP_TABLES:
        for row in database.query(f"select * from {table} order by id"):
            digest.update(repr(row).encode())
    return digest.hexdigest()


def test_same_seed_gives_the_same_rows(database: Database) -> None:
    database.load_demo(tenants=40, seed=3)
    first = _fingerprint(database)
    database.load_demo(tenants=40, seed=3)
    assert _fingerprint(database) == first
    database.load_demo(tenants=40, seed=4)
    assert _fingerprint(database) != first


def test_demo_data_has_the_messy_cases(database: Database) -> None:
    database.load_demo(tenants=300, seed=11)
    q = database.query
    statuses = {row[0] for row in q("select distinct status from subscriptions")}
    assert {"active", "canceled", "trialing", "past_due"} <= statuses
    assert any(status != status.strip().lower() for status in statuses), "odd-case statuses"
    assert q("select count(*) from vps_instances where tenant_id is null")[0][0] > 0
    assert q("select count(*) from vps_instances where status = 'terminated'")[0][0] > 0
    assert q("select count(*) from smtp_ip_addresses where vps_instance_id is null")[0][0] > 0
    assert q("select count(*) from smtp_ip_addresses where status = 'retired'")[0][0] > 0
    assert q("select count(*) from payments where status in ('failed', 'refunded')")[0][0] > 0
    two_active = q(
        "select count(*) from (select tenant_id from subscriptions "
        "where lower(trim(status)) = 'active' group by tenant_id "
        "having count(*) > 1) as multi"
    )[0][0]
    assert two_active > 0
    no_usage = q(
        "select count(*) from companies as c where not exists (select 1 from "
        "subscriptions as s join billing_analytics as b on b.subscription_id = s.id "
        "where s.tenant_id = c.id)"
    )[0][0]
    assert no_usage > 0
    # before the migration: no approximate_cost columns
    assert q(
        "select count(*) from information_schema.columns where column_name = 'approximate_cost'"
    ) == [(0,)]
    # the last day of usage is the anchor date
    assert q("select max(period_start) from billing_analytics") == [(ANCHOR,)]


def test_refuses_to_replace_tables_it_did_not_create(database: Database) -> None:
    with database.connect() as conn:
        conn.execute("create table payments (id uuid primary key)")
        with pytest.raises(PmcostError, match=r"public\.payments exists and was not created"):
            demo_data.load(conn, tenants=5, seed=1, anchor=ANCHOR, schema="public")
    assert database.query("select count(*) from payments") == [(0,)]


def test_rejects_a_tenant_count_below_one(database: Database) -> None:
    with database.connect() as conn, pytest.raises(UsageError, match="--tenants"):
        demo_data.load(conn, tenants=0, seed=1, anchor=ANCHOR, schema="public")
