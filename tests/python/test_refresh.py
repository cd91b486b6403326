"""The scheduled refresh and plain dbt: pre-hook first, clear failures, one run at a time."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pmcost import refresh
from pmcost.dbt import code_fingerprint

from .conftest import ANCHOR, BIN, PROJECT, Database, pmcost_in_process, project_copy


def test_refresh_on_an_existing_postgres_builds_marts_and_docs(database: Database) -> None:
    database.load_demo(tenants=60)
    counts_before = database.query(
        "select (select count(*) from companies), (select count(*) from billing_analytics)"
    )
    result = database.pmcost("refresh", "--target", "postgres", "--as-of", ANCHOR.isoformat())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    run_results = json.loads((database.work_dir / "target" / "run_results.json").read_text())
    assert len(run_results["results"]) > 100
    assert "refresh: OK" in result.stdout
    assert "Completed successfully" in result.stdout  # dbt's own output reaches the user
    # no demo data written: the application tables are as they were
    assert (
        database.query(
            "select (select count(*) from companies), (select count(*) from billing_analytics)"
        )
        == counts_before
    )
    marts = database.query(
        "select count(*), min(dashboard_date), max(dashboard_date) "
        "from analytics.executive_business_summary"
    )
    assert marts[0][0] > 0 and marts[0][1] == marts[0][2] == ANCHOR
    assert (database.work_dir / "target" / "catalog.json").is_file()
    # (a refresh again on data it has refreshed: every test that refreshes a built copy,
    # test_publication's successful refresh among them)


def test_second_refresh_exits_clearly_while_one_runs(database: Database) -> None:
    database.load_demo(tenants=10)
    with database.connect() as holder:
        holder.execute("select pg_advisory_lock(1886221, 2)")
        result = database.pmcost("refresh", "--target", "postgres")
    assert result.returncode == 75
    assert "another pmcost refresh" in result.stderr
    assert "Traceback" not in result.stderr


def test_plain_dbt_build_fails_fast_without_the_pre_hook(database: Database) -> None:
    database.load_demo(tenants=10)
    result = database.dbt("build")
    assert result.returncode != 0
    assert "vps_instances.approximate_cost is missing: run `pmcost ddl apply`" in result.stdout
    assert "smtp_ip_addresses.approximate_cost is missing" in result.stdout


def test_missing_source_table_and_column_are_named(database: Database) -> None:
    database.load_demo(tenants=10)
    database.apply_ddl()
    with database.connect() as conn:
        conn.execute("drop table billing_analytics")
        conn.execute("alter table payments drop column currency")
    result = database.dbt("build")
    assert result.returncode != 0
    assert "source table public.billing_analytics is missing" in result.stdout
    assert "source column public.payments.currency is missing" in result.stdout
    # a refresh stops at its first dbt step, and its own error line (what a scheduler keeps
    # of stderr) names them too
    refreshed = database.pmcost("refresh", "--target", "postgres", "--as-of", ANCHOR.isoformat())
    assert refreshed.returncode == 1
    error = refreshed.stderr.strip().splitlines()[-1]
    assert error.startswith("pmcost: error: `dbt source freshness` failed before judging")
    assert "source table public.billing_analytics is missing" in error
    assert "source column public.payments.currency is missing" in error
    assert "nothing was built or published" in error and "> in macro" not in error


def test_bad_as_of_var_is_named_with_the_fix(database: Database) -> None:
    database.load_demo(tenants=10)
    database.apply_ddl()
    result = database.dbt(
        "build",
        "--select",
        "executive_business_summary",
        as_of=None,
        extra_vars={"as_of_date": "20/11/2026"},
    )
    assert result.returncode != 0
    assert "var as_of_date = '20/11/2026' is not a date: use YYYY-MM-DD" in result.stdout


def test_build_command_end_to_end_twice(database: Database) -> None:
    """`pmcost build` on its own embedded server: the first of README's two commands, run
    as its console script runs it, in this process as the suite's other refreshes run
    (conftest.pmcost_in_process; test_cli runs the script itself). Then dbt's freshness
    and psql, as processes, on what it built."""
    state = Path(tempfile.mkdtemp(prefix="pmcost-build-test-"))
    state.chmod(0o755)
    env = {key: value for key, value in database.env().items() if not key.startswith("PG")}
    env.update({"PMCOST_STATE_DIR": str(state), "PMCOST_TARGET": "embedded"})
    env.pop("DBT_PROFILES_DIR")
    try:
        for _ in range(2):
            result = pmcost_in_process(
                [
                    "build",
                    "--tenants",
                    "50",
                    "--anchor-date",
                    ANCHOR.isoformat(),
                    "--as-of",
                    ANCHOR.isoformat(),
                    # two weeks, not the default nine: the semantic-layer test builds those
                    "--history-days",
                    "14",
                ],
                env,
            )
            assert result.returncode == 0, result.stdout[-4000:] + result.stderr
            assert "connection string : postgresql://pmcost@127.0.0.1:" in result.stdout
            # where the demo's executive report is (internal: owner-only)
            shown = re.search(r"executive report  : (\S+)", result.stdout)
            assert shown, result.stdout[-2000:]
            written = Path(shown.group(1))
            assert (
                written.name == "executive-day.html" and written.parent.name == ANCHOR.isoformat()
            )
            assert stat.S_IMODE(written.stat().st_mode) == 0o600
            # the demo's tables are created anew each time: the refresh's pre-hook adds the
            # columns to them again
            assert "done: add column public.vps_instances.approximate_cost" in result.stdout
            # no secret in what a scheduler logs, nor in dbt's artefacts
            password = json.loads((state / "server.json").read_text())["password"]
            assert password not in result.stdout + result.stderr
            for artefact in (PROJECT / "target").rglob("*"):
                if artefact.is_file() and artefact.stat().st_size < 50_000_000:
                    assert password.encode() not in artefact.read_bytes(), artefact
        # the demo's feeds are current for its last day: dbt's own freshness command passes
        freshness = subprocess.run(
            [
                str(BIN / "pmcost"),
                "dbt",
                "--as-of",
                ANCHOR.isoformat(),
                "--",
                "source",
                "freshness",
            ],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert freshness.returncode == 0, freshness.stdout[-3000:]
        assert "PASS freshness of app.billing_analytics" in freshness.stdout
        info = json.loads((state / "server.json").read_text())
        psql = subprocess.run(
            [
                str(BIN / "pmcost"),
                "psql",
                "-At",
                "-c",
                "select count(*) > 0 from analytics.business_cost_allocation",
            ],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert psql.stdout.strip() == "t", psql.stderr
        assert info["port"] > 0
    finally:
        subprocess.run(
            [str(BIN / "pmcost"), "down"], env=env, cwd=PROJECT, check=False, capture_output=True
        )
        shutil.rmtree(state, ignore_errors=True)


def test_the_code_fingerprint_follows_the_project_code_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What decides whether a refresh runs the unit tests: the project's dbt files and the
    versions, not the rest of the repository."""
    project = project_copy(tmp_path)
    monkeypatch.setenv("PMCOST_PROJECT_DIR", str(project))
    first = code_fingerprint(180000)
    assert code_fingerprint(180000) == first
    (project / "README.md").write_text("edited")
    assert code_fingerprint(180000) == first
    assert code_fingerprint(170000) != first  # another PostgreSQL
    model = project / "models" / "marts" / "finance" / "business_cost_allocation.sql"
    model.write_text(model.read_text() + "\n")
    changed = code_fingerprint(180000)
    assert changed != first
    (project / "macros" / "scratch.sql").write_text("{% macro scratch() %}{% endmacro %}")
    assert code_fingerprint(180000) != changed


def test_run_records_are_kept_for_90_days_and_never_fewer_than_the_last_100(
    tmp_path: Path,
) -> None:
    """Each refresh writes one record; the oldest go once they are both past the window and
    beyond the newest hundred. last.json and files that are not run records stay."""
    now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)

    def record(started: datetime, outcome: str = "published") -> Path:
        path = tmp_path / f"{started.strftime(refresh.RUN_RECORD_STAMP)}-{outcome}.json"
        path.write_text("{}\n")
        return path

    # a quiet deployment: 20 runs over a year, all kept (fewer than 100)
    quiet = [record(now - timedelta(days=20 * day)) for day in range(20)]
    assert refresh.prune_run_records(tmp_path, now) == []
    assert all(path.exists() for path in quiet)
    # a busy one: 150 more within the last two days push the year-old ones out, but only
    # those older than 90 days; a failed run's record is a run record like any other
    busy = [record(now - timedelta(minutes=15 * run), "failed") for run in range(1, 151)]
    other = [tmp_path / "last.json", tmp_path / "unit_tested.json", tmp_path / "notes-1.json"]
    for path in other:
        path.write_text("{}\n")
    removed = refresh.prune_run_records(tmp_path, now)
    assert set(removed) == {path for path in quiet if path.name < "2026-09-08"}
    assert all(path.exists() for path in busy + other)
    assert sum(path.exists() for path in quiet) == 5  # days 0 to 80 of the quiet ones

    # the refresh prunes after writing its own record
    summary = refresh.Summary(
        started_at=now.isoformat(timespec="seconds"),
        as_of_date="2026-12-07",
        history_start=None,
        target="postgres",
        outcome="published",
    )
    written = refresh.write_summary(summary, tmp_path)
    assert written.name == "2026-12-07T060000Z-published.json" and written.exists()
    assert json.loads((tmp_path / "last.json").read_text())["outcome"] == "published"
