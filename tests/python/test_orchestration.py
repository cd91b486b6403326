"""The Dagster definitions (the `dagster` extra): they load, and one daily refresh runs
through them against the test server, pre-hook first and publish last, with dbt's tests as
asset checks. A refresh lock held elsewhere (exit 75 in `pmcost refresh`) is retried; the
run then fails without building or publishing anything."""

from __future__ import annotations

import importlib
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from pmcost import dbt as dbt_runner
from pmcost.refresh import REFRESH_LOCK

from .conftest import ANCHOR, BUILD_VARS, PROJECT, PUBLISHED_VARS, Database

if TYPE_CHECKING:  # Dagster is imported by the one test that uses it, not by every worker
    import dagster as dg


def _published_runs(database: Database) -> list[tuple]:
    return database.query(
        "select as_of_date::text from analytics_publication.published_runs order by published_at"
    )


def _steps_started(result: dg.ExecuteInProcessResult) -> list[str]:
    return [event.step_key for event in result.all_events if event.event_type_value == "STEP_START"]


def test_daily_refresh_through_dagster(built: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    for name, value in built.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PMCOST_PROJECT_DIR", str(PROJECT))
    monkeypatch.setenv("PMCOST_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("PMCOST_RETRY_SECONDS", "0.1")
    # a deployment that has parsed the project before: the definitions' dbt parse, then the
    # run's freshness and build, start from its partial-parse state
    built.parse_cache.seed(
        built.name, BUILD_VARS, built.target / "dagster" / "partial_parse.msgpack"
    )
    # and its docs step, for the published relations, from the state the last day's left
    built.parse_cache.seed(built.name, PUBLISHED_VARS, built.target / "partial_parse.msgpack")
    # the definitions as Dagster loads them, with this test's environment (one `dbt parse`)
    name = "pmcost.dagster_defs"
    loaded = sys.modules.get(name)
    module = importlib.reload(loaded) if loaded else importlib.import_module(name)
    job = module.defs.resolve_job_def("pmcost_daily_refresh")
    tags = {module.AS_OF_TAG: ANCHOR.isoformat()}
    before = _published_runs(built)

    with built.connect() as holder:  # a `pmcost refresh` from cron holds the lock
        holder.execute("select pg_advisory_lock(%s, %s)", REFRESH_LOCK)
        busy = job.execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), tags=tags, raise_on_error=False
        )
    assert not busy.success
    kinds = [event.event_type_value for event in busy.all_events]
    assert kinds.count("STEP_UP_FOR_RETRY") == 1 and kinds.count("STEP_RESTARTED") == 1
    assert _steps_started(busy) == ["application_tables"]  # retried, never got further
    assert _published_runs(built) == before

    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=tags)
    assert result.success
    # the unit tests as `pmcost refresh` runs them: this code's passed before (the folder's
    # record), so the build left them out
    build = json.loads(
        (dbt_runner.target_dir() / "dagster" / result.run_id / "run_results.json").read_text()
    )
    kinds = {entry["unique_id"].split(".")[0] for entry in build["results"]}
    assert "model" in kinds and "unit_test" not in kinds, kinds
    assert _steps_started(result) == [
        "application_tables",
        "pmcost_dbt",
        "published_marts",
        "executive_report",
    ]
    checks = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    # every dbt test on one table (a model or seed; an ephemeral model is no asset) is a
    # check of that asset, and each passed
    manifest = json.loads((dbt_runner.target_dir() / "dagster" / "manifest.json").read_text())
    nodes = manifest["nodes"]
    single_parent_tests = {
        node["name"]
        for node in nodes.values()
        if node["resource_type"] == "test"
        and node.get("attached_node")
        and len(node["depends_on"]["nodes"]) == 1
        and nodes[node["attached_node"]]["config"]["materialized"] != "ephemeral"
    }
    assert len(single_parent_tests) > 60  # many: the tests of every model and seed
    assert single_parent_tests <= {check.check_name for check in checks}
    assert all(check.passed for check in checks)
    checked = {check.asset_key.path[-1] for check in checks}
    assert {"executive_business_summary", "business_cost_allocation"} <= checked
    materialized = {
        event.asset_key.path[-1]
        for event in result.all_events
        if event.event_type_value == "ASSET_MATERIALIZATION"
    }
    assert {"billing_analytics", "fct_tenant_economics_daily", "published_marts"} <= materialized
    assert _published_runs(built) == [*before, (ANCHOR.isoformat(),)]
    # and then, as `pmcost refresh` does, the docs site and the day's executive report
    folder = built.work_dir / "reports" / ANCHOR.isoformat()
    assert {path.name for path in folder.iterdir()} == {"executive-day.html", "lineage.html"}
    catalog = json.loads((built.target / "catalog.json").read_text())
    assert {node["metadata"]["schema"] for node in catalog["nodes"].values()} >= {"analytics"}
    assert "analytics_candidate" not in (folder / "lineage.html").read_text()

    # its days are planned as `pmcost refresh` plans them (the same step function): a run
    # tagged with a past day is a backfill up to the published day, where the marts stay
    lock = module.RefreshLock()
    said: list[str] = []
    past = ANCHOR - timedelta(days=10)
    assert lock.plan(past, say=said.append) == (ANCHOR, past - timedelta(days=3))
    assert any("backfill" in line for line in said), said
    # and its publish recorded the feeds' loads, as a refresh's does: nothing loaded since,
    # the next daily run recomputes the as-of day alone
    recorded = built.query(
        "select loaded_through from analytics_publication.published_runs "
        "order by published_at desc limit 1"
    )[0][0]
    assert set(recorded) == {"billing_analytics", "payments"}
    assert lock.plan(ANCHOR, say=said.append) == (ANCHOR, ANCHOR)
    assert f"history: recomputing {ANCHOR} only" in said[-1]
