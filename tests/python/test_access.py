"""Grants and row level security on the marts, logging in as each role (issue: access control).

Every check runs on the freshly built marts, again after a second `pmcost refresh` (tables
rebuilt and swapped in) and again after `--full-refresh`: grants and policies must survive.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql

from pmcost.server import ServerInfo

from .conftest import ANCHOR, Database

PASSWORD = "access-test"
LOGINS = {
    "pmcost_test_app": "application_service",
    "pmcost_test_analyst": "business_analysts",
    "pmcost_test_admin": "db_administrators",
    "pmcost_test_nobody": None,
}
MARTS = ("executive_business_summary", "business_cost_allocation")


@pytest.fixture(scope="module")
def logins(server: ServerInfo) -> Iterator[None]:
    """Login roles for the tests: members of the group roles, and one with no grant at all."""
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        for login, group in LOGINS.items():
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(login)))
            conn.execute(
                sql.SQL("create role {} login password {}").format(
                    sql.Identifier(login), sql.Literal(PASSWORD)
                )
            )
            if group:
                conn.execute(
                    sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(login))
                )
    yield
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        for login in LOGINS:
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(login)))
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(login)))


def _as(database: Database, login: str) -> psycopg.Connection:
    return psycopg.connect(
        psycopg.conninfo.make_conninfo(database.conninfo, user=login, password=PASSWORD),
        autocommit=True,
    )


def _check_everything(database: Database) -> None:
    tenants = [
        row[0]
        for row in database.query(
            "select tenant_id from analytics.executive_business_summary order by tenant_id"
        )
    ]
    assert len(tenants) > 50

    with _as(database, "pmcost_test_app") as app:
        for mart in MARTS:
            # unset, empty: nothing, and no error
            assert app.execute(f"select count(*) from analytics.{mart}").fetchone() == (0,)
            app.execute("set app.current_tenant_id = ''")
            assert app.execute(f"select count(*) from analytics.{mart}").fetchone() == (0,)
            app.execute("reset app.current_tenant_id")
        for tenant in tenants:
            app.execute("select set_config('app.current_tenant_id', %s, false)", (str(tenant),))
            for mart in MARTS:
                seen = app.execute(f"select tenant_id from analytics.{mart}").fetchall()
                assert seen == [(tenant,)], (mart, tenant)
        # no tenant rows in the reconciliation: a tenant session sees none of it
        assert app.execute(
            "select count(*) from analytics.cost_allocation_reconciliation"
        ).fetchone() == (0,)
        # a malformed id is a clear error, not rows
        app.execute("set app.current_tenant_id = 'not-a-uuid'")
        with pytest.raises(errors.InvalidParameterValue, match="is not a tenant id"):
            app.execute("select * from analytics.executive_business_summary").fetchall()
        app.execute("reset app.current_tenant_id")
        # Finance's cost columns on the application tables are not for tenant-facing roles
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute("select approximate_cost from public.vps_instances").fetchall()
        assert app.execute("select count(hostname) from public.vps_instances").fetchone()[0] > 0
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute("update analytics.executive_business_summary set plan_name = 'x'")

    with _as(database, "pmcost_test_analyst") as analyst:
        for mart in (*MARTS, "cost_allocation_reconciliation"):
            total = database.query(f"select count(*) from analytics.{mart}")[0][0]
            assert analyst.execute(f"select count(*) from analytics.{mart}").fetchone() == (total,)
        for statement in (
            "insert into analytics.executive_business_summary select * from "
            "analytics.executive_business_summary limit 1",
            "update analytics.executive_business_summary set plan_name = 'x'",
            "delete from analytics.business_cost_allocation",
            "truncate analytics.business_cost_allocation",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                analyst.execute(statement)
        # staging and intermediate models are not for dashboard roles
        with pytest.raises(errors.InsufficientPrivilege):
            analyst.execute("select count(*) from analytics_intermediate.int_vps_cost_intervals")

    with _as(database, "pmcost_test_admin") as admin:
        total = database.query("select count(*) from analytics.executive_business_summary")[0][0]
        assert admin.execute(
            "select count(*) from analytics.executive_business_summary"
        ).fetchone() == (total,)
        with admin.transaction(force_rollback=True):
            updated = admin.execute(
                "update analytics.executive_business_summary set plan_name = plan_name"
            ).rowcount
            assert updated == total
            admin.execute("delete from analytics.business_cost_allocation")
            admin.execute("truncate analytics.cost_allocation_reconciliation")

    with _as(database, "pmcost_test_nobody") as nobody:
        for mart in MARTS:
            with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
                nobody.execute(f"select count(*) from analytics.{mart}")


def test_grants_and_rls_hold_through_rebuilds(built: Database, logins: None) -> None:
    # the template was built by plain dbt; now the scheduled job twice, then a full refresh
    _check_everything(built)
    for extra in ((), ("--full-refresh",)):
        result = built.pmcost(
            "refresh", "--target", "postgres", "--as-of", ANCHOR.isoformat(), *extra
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        _check_everything(built)


def test_missing_role_is_named_with_the_fix(built: Database) -> None:
    result = built.dbt(
        "build",
        "--select",
        "executive_business_summary",
        extra_vars={"analyst_role": "finance_readers"},
    )
    assert result.returncode != 0
    assert "role(s) finance_readers missing" in result.stdout
    assert "create role finance_readers nologin" in result.stdout
