"""Write-audit-publish: a refresh changes the published tables all together, or not at all.

Each test starts from a published build (the `built` copy) and checks, after a refresh that
must not publish, that every published table is the same table (same oid) with the same
rows (md5 of its contents) as before.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from pmcost import publish
from pmcost.publish import kept_state
from pmcost.refresh import UNIT_TESTED_FILE, WITHOUT_UNIT_TESTS, SourceCount
from pmcost.settings import Target

from .conftest import ANCHOR, Database

PUBLISHED = (
    "approximate_cost_drift",
    "executive_business_summary",
    "business_cost_allocation",
    "cost_allocation_reconciliation",
    "fct_tenant_economics_daily",
    "invoice_reconciliation_by_resource",
    "invoice_reconciliation_monthly",
    "resource_cost_intervals",
    "tenant_cost_anomalies",
    "tenant_invoice_margin",
)


def fingerprint(database: Database) -> dict[str, object]:
    """(oid, md5 of every row) of each published table, and the md5 of every row of each
    table a later run reads (the snapshots, the history, the publication record, Finance's
    tables: kept_state)."""
    prints: dict[str, object] = {}
    for table in PUBLISHED:
        oid, digest = database.query(
            f"select 'analytics.{table}'::regclass::oid::bigint, "
            f"md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
            f"from analytics.{table} as t"
        )[0]
        prints[table] = (oid, digest)
    with database.connect() as conn:
        prints["kept"] = kept_state(conn)
    return prints


def refresh(database: Database, *args: str, as_of: date = ANCHOR):
    return database.pmcost("refresh", "--target", "postgres", "--as-of", as_of.isoformat(), *args)


def summary(database: Database) -> dict:
    return json.loads((database.work_dir / "target" / "refresh" / "last.json").read_text())


def test_plain_dbt_build_never_changes_published_tables(built: Database) -> None:
    before = fingerprint(built)
    built.query("update vps_instances set approximate_cost = 700 returning 1")
    # builds into analytics_candidate (dbt's unit tests, which write nothing, left out)
    built.dbt("build", *WITHOUT_UNIT_TESTS, check=True)
    assert fingerprint(built) == before
    assert built.query("select count(*) > 0 from analytics_candidate.executive_business_summary")
    # nobody but the owner reads an unpublished candidate
    usage = built.query(
        "select has_schema_privilege('business_analysts', 'analytics_candidate', 'usage')"
    )
    assert usage == [(False,)]


@pytest.mark.parametrize("table", ["subscriptions", "billing_analytics"])
def test_an_empty_application_table_stops_the_refresh(built: Database, table: str) -> None:
    """Finding 2: `truncate subscriptions` published empty marts with exit 0; an empty
    billing_analytics gave every tenant 0 emails without a word. The usage feed has an
    error threshold, so its freshness check stops the refresh first; past it, the guard,
    before the build (the last published run counted the table). Accepted, the publish
    counts it again and records the breach with the run."""
    before = fingerprint(built)
    built.execute(f"truncate {table}")
    if table == "billing_analytics":
        stale = refresh(built)
        assert stale.returncode == 1
        assert "app.billing_analytics has no rows" in stale.stderr
        assert fingerprint(built) == before
    result = refresh(built, "--skip-freshness")
    assert result.returncode == 1, result.stdout[-3000:]
    assert f"public.{table} has 0 rows" in result.stderr
    assert "--accept-changes" in result.stderr
    assert fingerprint(built) == before
    assert summary(built)["outcome"] == "guard"
    assert "refusing to build" in result.stderr and "build" not in summary(built)["steps"]

    accepted = refresh(built, "--accept-changes", "--skip-freshness")
    assert accepted.returncode == 0, accepted.stdout[-3000:] + accepted.stderr
    assert fingerprint(built) != before
    recorded = built.query(
        "select accepted_changes::text from analytics_publication.published_runs "
        "order by published_at desc limit 1"
    )[0][0]
    assert f"public.{table} has 0 rows" in recorded


def test_a_stale_feed_stops_the_refresh_and_a_late_one_warns(built: Database) -> None:
    """Freshness is measured at the end of the as-of day. The demo's feeds are current;
    usage 4 days late is past its error threshold (72 hours): nothing is built or published.
    Payments 4 days late are past their warn threshold only (3 days; error after 7)."""
    assert built.dbt("source", "freshness").returncode == 0
    before = fingerprint(built)
    built.execute("update billing_analytics set created_at = created_at - interval '4 days'")
    stopped = refresh(built)
    assert stopped.returncode == 1
    line = stopped.stderr.strip().splitlines()[-1]
    assert "source freshness failed, nothing was built or published" in line
    assert "app.billing_analytics was last loaded 120.0 hours before the as-of moment" in line
    assert "over its error threshold of 72 hours" in line
    assert "--skip-freshness" in line
    assert fingerprint(built) == before
    assert summary(built)["freshness"]["app.billing_analytics"] == "error"
    assert "build" not in summary(built)["steps"]

    built.execute("update billing_analytics set created_at = created_at + interval '4 days'")
    built.execute("update payments set created_at = created_at - interval '4 days'")
    warned = refresh(built)
    assert warned.returncode == 0, warned.stdout[-3000:] + warned.stderr
    assert (
        "source freshness: WARNING app.payments was last loaded 120.0 hours before the as-of moment"
    ) in warned.stdout
    assert "over its warn threshold of 3 days; the refresh goes on" in warned.stdout
    assert summary(built)["freshness"] == {
        "app.billing_analytics": "pass",
        "app.payments": "warn",
        "app.subscriptions": "pass",
    }
    assert summary(built)["outcome"] == "published"


def test_a_large_move_against_the_last_published_run_needs_acceptance(built: Database) -> None:
    tenants = built.query("select count(*) from analytics.executive_business_summary")[0][0]
    built.query(
        "update subscriptions set status = 'canceled' where id in (select id from subscriptions "
        "where lower(trim(status)) = 'active' order by id limit (select count(*) / 2 "
        "from subscriptions where lower(trim(status)) = 'active')) returning 1"
    )
    before = fingerprint(built)
    result = refresh(built)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "analytics.executive_business_summary:" in line
    assert f"last published run {tenants:,}" in line  # both numbers on the line
    assert "var publish_max_tenant_change" in line
    assert fingerprint(built) == before
    guards = summary(built)["guards"]
    assert guards["breaches"] and guards["last_published"]["tenants"]


@pytest.mark.parametrize("day", ["9999-12-31", "1900-01-01"])
def test_an_as_of_date_no_data_describes_is_refused_before_any_write(
    built: Database, day: str
) -> None:
    """Finding 3: 9999-12-31 left rows for the year 9999 in the daily fact for good."""
    before = fingerprint(built)
    built.execute("drop index idx_vps_instances_approximate_cost")  # the pre-hook would rebuild it
    result = refresh(built, as_of=date.fromisoformat(day))
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert f"--as-of {day}" in result.stderr
    assert fingerprint(built) == before
    assert built.query(
        "select count(*) from pg_indexes where indexname = 'idx_vps_instances_approximate_cost'"
    ) == [(0,)]
    assert built.query(
        "select count(*) from pg_namespace where nspname = 'analytics_candidate'"
    ) == [(0,)]


def test_plain_dbt_refuses_an_as_of_after_tomorrow(built: Database) -> None:
    too_late = (date.today() + timedelta(days=2)).isoformat()
    result = built.dbt("build", as_of=None, extra_vars={"as_of_date": too_late})
    assert result.returncode != 0
    assert "is after tomorrow" in result.stdout


def test_a_successful_refresh_switches_every_table_and_keeps_the_build_results(
    built: Database,
) -> None:
    """Finding 9: run_results.json held the docs generation's results, not the build's."""
    before = fingerprint(built)
    history_before = built.query("select count(*) from analytics.fct_tenant_economics_daily")[0][0]
    built.execute("create table analytics.finance_notes as select 'keep me' as note")
    # as in a fresh clone: no record of unit tests having passed from this folder
    (built.target / "refresh" / UNIT_TESTED_FILE).unlink()
    result = refresh(built, as_of=ANCHOR + timedelta(days=1))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    # the pre-hook was applied when the copy was built: nothing left to do
    assert "nothing to do: columns, constraints and indexes already in place" in result.stdout
    # a table the project does not build survives the switch
    assert built.query("select note from analytics.finance_notes") == [("keep me",)]
    after = fingerprint(built)
    assert all(after[table][0] != before[table][0] for table in PUBLISHED)  # all new tables
    # the incremental history was carried into the candidate, not rebuilt from nothing
    history_after = built.query("select count(*) from analytics.fct_tenant_economics_daily")[0][0]
    assert history_after > history_before

    target = built.work_dir / "target"
    run_results = json.loads((target / "run_results.json").read_text())
    assert run_results["args"]["which"] == "build"
    assert any(r["unique_id"].startswith("test.") for r in run_results["results"])
    assert (target / "catalog.json").is_file()

    report = summary(built)
    assert report["outcome"] == "published" and report["exit_code"] == 0
    assert report["as_of_date"] == (ANCHOR + timedelta(days=1)).isoformat()
    steps = {"freshness", "pre_hook", "build", "publish", "alerts", "docs", "report"}
    assert set(report["steps"]) == steps
    # a Saturday: the day's executive report and the docs site as one file beside it
    assert [written["period"] for written in report["reports"]] == ["day", "lineage"]
    # no webhook set: the alert step says so and sends nothing
    assert report["alerts"]["skipped"] == "PMCOST_ALERT_WEBHOOK is not set"
    assert set(report["tables"]) == set(PUBLISHED)
    assert report["tables"]["executive_business_summary"] > 0
    assert report["tables"]["fct_tenant_economics_daily"] == history_after
    assert report["tests"]["passed"] > 100 and report["tests"]["failed"] == 0
    assert report["invocation_id"] == run_results["metadata"]["invocation_id"]
    assert report["guards"]["figures"]["totals"]["revenue"]
    assert list((target / "refresh").glob("*-published.json"))
    # the docs site shows the relations readers query, not the candidate
    catalog = json.loads((target / "catalog.json").read_text())
    schemas = {node["metadata"]["schema"] for node in catalog["nodes"].values()}
    assert "analytics" in schemas and "analytics_candidate" not in schemas
    # the audit table keeps the published run's figures
    runs = built.query(
        "select invocation_id, figures -> 'tenants' ->> 'executive_business_summary' "
        "from analytics_publication.published_runs order by published_at desc limit 1"
    )
    assert runs[0][0] == report["invocation_id"]
    assert int(runs[0][1]) == report["tables"]["executive_business_summary"]
    # with the application tables' row counts, taken while dbt started
    recorded = built.query(
        "select figures -> 'sources' from analytics_publication.published_runs "
        "order by published_at desc limit 1"
    )[0][0]
    assert "public.billing_analytics" in recorded and "public.companies" in recorded
    for table, count in recorded.items():
        assert built.query(f"select count(*) from {table}")[0][0] == count, table

    # the first build from this folder ran the unit tests; with the code unchanged since they
    # passed, the next refresh leaves them out and still runs every data test
    assert report["unit_tests"] == "ran"
    assert any(r["unique_id"].startswith("unit_test.") for r in run_results["results"])
    again = refresh(built, as_of=ANCHOR + timedelta(days=1))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert "unit tests: skipped" in again.stdout
    assert summary(built)["unit_tests"].startswith("skipped")
    rerun = json.loads((target / "refresh" / "build_run_results.json").read_text())["results"]
    assert not any(r["unique_id"].startswith("unit_test.") for r in rerun)
    assert sum(r["unique_id"].startswith("test.") for r in rerun) == sum(
        r["unique_id"].startswith("test.") for r in run_results["results"]
    )


def test_publish_refuses_a_partial_or_stale_build(built: Database) -> None:
    before = fingerprint(built)
    built.dbt("build", "--select", "staging", check=True)
    result = built.pmcost("publish", "--target", "postgres")
    assert result.returncode == 1
    assert "run a full `dbt build`" in result.stderr
    built.dbt("run", check=True)
    result = built.pmcost("publish", "--target", "postgres")
    assert result.returncode == 1
    assert "not `dbt build`" in result.stderr
    # every published model built, one of their data tests left out
    built.dbt(
        "build",
        "--select",
        "marts",
        "--exclude",
        "primary_key_executive_business_summary_tenant_id",
        check=True,
    )
    result = built.pmcost("publish", "--target", "postgres")
    assert result.returncode == 1
    assert "left out 1 data test(s)" in result.stderr
    assert "primary_key_executive_business_summary_tenant_id" in result.stderr
    assert fingerprint(built) == before
    built.dbt("build", "--select", "marts", check=True)  # every published model: publishable
    assert built.pmcost("publish", "--target", "postgres").returncode == 0
    assert fingerprint(built) != before


def test_the_application_can_migrate_its_tables_while_the_marts_exist(built: Database) -> None:
    """Finding 8: a staging view over billing_analytics made the application's own
    `alter table billing_analytics drop column ...` fail."""
    migrations = {
        "companies": ("name", "updated_at"),
        "plans": ("name", "updated_at"),
        "subscriptions": ("status", "updated_at"),
        "vps_instances": ("hostname", "updated_at"),
        "smtp_ip_addresses": ("ip_address", "updated_at"),  # status: a pre-hook index
        "payments": ("status", "created_at"),
        "billing_analytics": ("emails_sent", "emails_bounced"),
    }
    with built.connect() as conn:
        conn.execute("set lock_timeout = '5s'")
        for table, (altered, dropped) in migrations.items():
            kind = "numeric(20)" if altered == "emails_sent" else "varchar(400)"
            conn.execute(f"alter table {table} alter column {altered} type {kind}")
            conn.execute(f"alter table {table} drop column {dropped}")
    result = refresh(built)
    assert result.returncode == 1
    for table, (_, dropped) in migrations.items():
        assert f"source column public.{table}.{dropped} is missing" in result.stdout


def test_a_test_of_a_source_or_ephemeral_model_is_owed_by_the_models_that_read_it() -> None:
    """The publish rule on its own: a data test is owed when every node it reads was run;
    a source and an ephemeral model are never run themselves, so the models that read them
    stand in for them."""
    manifest = {
        "nodes": {
            "model.p.stg": {
                "resource_type": "model",
                "config": {"materialized": "ephemeral"},
                "depends_on": {"nodes": ["source.p.app.usage"]},
            },
            "model.p.daily": {
                "resource_type": "model",
                "config": {"materialized": "table"},
                "depends_on": {"nodes": ["model.p.stg"]},
            },
            "test.p.source_key": {
                "resource_type": "test",
                "depends_on": {"nodes": ["source.p.app.usage"]},
            },
            "test.p.stg_rule": {"resource_type": "test", "depends_on": {"nodes": ["model.p.stg"]}},
            "test.p.daily_key": {
                "resource_type": "test",
                "depends_on": {"nodes": ["model.p.daily"]},
            },
        }
    }
    owed = publish._tests_with_parents(manifest)
    assert owed == {
        "test.p.source_key": [["model.p.daily"]],
        "test.p.stg_rule": [["model.p.daily"]],
        "test.p.daily_key": [["model.p.daily"]],
    }


def test_the_source_counts_are_taken_beside_the_refresh_or_left_to_the_publish(
    built: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the application tables are the `app` source's, as the last manifest names them
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "sources": {
                    "source.pmcost.app.companies": {
                        "source_name": "app",
                        "identifier": "companies",
                    },
                    "source.pmcost.app.billing_analytics": {
                        "source_name": "app",
                        "identifier": "billing_analytics",
                    },
                    "source.pmcost.finance.invoice_lines": {
                        "source_name": "finance",
                        "identifier": "invoice_lines",
                    },
                }
            }
        )
    )
    tables = publish.app_tables_of(tmp_path)
    assert tables == ["billing_analytics", "companies"]
    assert publish.app_tables_of(tmp_path / "nowhere") == []

    for name, value in built.env().items():
        monkeypatch.setenv(name, value)
    target = Target(name="postgres", app_schema="public")
    counts = SourceCount(target, tables).counts()
    assert counts == {
        f"public.{table}": built.query(f"select count(*) from public.{table}")[0][0]
        for table in tables
    }
    assert counts["public.billing_analytics"] > 0
    # a table that is not there: no counts, the publish counts what it reads itself
    assert SourceCount(target, [*tables, "no_such_table"]).counts() is None
    assert SourceCount(target, []).counts() is None  # no manifest yet: nothing to count
