"""The column DDL pre-hook against a real embedded PostgreSQL (issue: idempotent, non-blocking)."""

from __future__ import annotations

import subprocess
import threading
import time

import psycopg
import pytest

from pmcost import ddl

from .conftest import ANCHOR, BIN, PROJECT, Database

QUIET = ddl.RunOptions(lock_timeout_ms=200, backoff_seconds=0.05, max_backoff_seconds=0.2)


def _silent(_message: str) -> None:
    return None


@pytest.fixture
def app_db(database: Database) -> Database:
    database.load_demo(tenants=20)
    return database


def test_apply_reaches_the_guide_target_state(app_db: Database) -> None:
    result = app_db.apply_ddl()
    assert result.ok, result
    with app_db.connect() as conn:
        assert ddl.verify(conn, "public") == []
        rows = {row[0]: row[1:] for row in ddl.guide_verification(conn, "public")}
    assert rows["vps_instances"] == ("approximate_cost", "numeric", 8, 2, "YES", "0.00")
    assert rows["smtp_ip_addresses"] == ("approximate_cost", "numeric", 6, 2, "YES", "0.00")
    comments = dict(
        app_db.query(
            "select c.relname, col_description(c.oid, a.attnum) from pg_attribute as a "
            "join pg_class as c on c.oid = a.attrelid where a.attname = 'approximate_cost' "
            "and c.relname in ('vps_instances', 'smtp_ip_addresses')"
        )
    )
    assert comments["vps_instances"] == ddl.VPS_COMMENT
    assert comments["smtp_ip_addresses"] == ddl.SMTP_COMMENT
    constraints = dict(
        app_db.query("select conname, convalidated from pg_constraint where conname like 'chk_%'")
    )
    assert constraints == {
        "chk_vps_approximate_cost_positive": True,
        "chk_smtp_approximate_cost_positive": True,
    }
    indexes = dict(
        app_db.query(
            "select i.relname, pg_get_indexdef(x.indexrelid) from pg_index as x "
            "join pg_class as i on i.oid = x.indexrelid where i.relname like 'idx_%' "
            "and x.indisvalid"
        )
    )
    assert "WHERE (status = 'active'::text)" in indexes["idx_vps_instances_approximate_cost"]
    assert (
        "ARRAY['active'::text, 'warmed'::text, 'warming'::text]"
        in indexes["idx_smtp_ip_addresses_approximate_cost"]
    )
    # existing rows take the default, nothing else about them changes
    assert app_db.query("select count(*) from vps_instances where approximate_cost <> 0") == [(0,)]


def test_apply_three_times_then_plans_are_empty(app_db: Database) -> None:
    with app_db.connect() as conn:
        first_plan = ddl.plan(conn, "public")
        assert len(first_plan.steps) == 10
        for _ in range(3):
            result = ddl.apply(conn, "public", say=_silent)
            assert result.ok
            assert ddl.plan(conn, "public").steps == []
        # the third apply had nothing to do
        assert result.applied == []


def test_two_applies_at_once_both_succeed(app_db: Database) -> None:
    barrier = threading.Barrier(2)
    results: list[ddl.ApplyResult] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with app_db.connect() as conn:
                barrier.wait()
                results.append(ddl.apply(conn, "public", say=_silent))
        except BaseException as error:  # reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert len(results) == 2 and all(result.ok for result in results)
    # every step ran exactly once, in one of the two runs
    applied = sorted(results[0].applied + results[1].applied)
    assert len(applied) == len(set(applied)) == 10
    with app_db.connect() as conn:
        assert ddl.verify(conn, "public") == []


def test_apply_waits_politely_for_a_busy_table(app_db: Database) -> None:
    """An open transaction that wrote to vps_instances blocks ADD COLUMN: apply must give up
    each try after its lock_timeout, say who holds the lock, and finish once it is released;
    meanwhile the application's other writes are never queued behind it for long."""
    messages: list[str] = []
    holder = app_db.connect(autocommit=False)
    holder.execute("update vps_instances set hostname = hostname where hostname like 't00001%'")
    outcome: list[ddl.ApplyResult] = []

    def run() -> None:
        with app_db.connect() as conn:
            outcome.append(ddl.apply(conn, "public", options=QUIET, say=messages.append))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not any("waiting" in message for message in messages):
            assert time.monotonic() < deadline, "apply never reported waiting"
            time.sleep(0.05)
        waiting = next(message for message in messages if "waiting" in message)
        assert "vps_instances" in waiting and "pid" in waiting and "idle in transaction" in waiting
        # the application keeps writing while apply retries
        with app_db.connect() as app:
            for _ in range(5):
                started = time.monotonic()
                app.execute(
                    "update vps_instances set hostname = hostname where hostname like 't00002%'"
                )
                assert time.monotonic() - started < 0.2 + 1.0
    finally:
        holder.commit()
        holder.close()
    thread.join(timeout=120)
    assert outcome and outcome[0].ok, outcome
    with app_db.connect() as conn:
        assert ddl.verify(conn, "public") == []


def test_negative_cost_is_rejected_after_apply(app_db: Database) -> None:
    app_db.apply_ddl()
    with app_db.connect() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "update vps_instances set approximate_cost = -1 "
            "where id = (select id from vps_instances limit 1)"
        )


def test_existing_negative_value_fails_validation_clearly(app_db: Database) -> None:
    with app_db.connect() as conn:
        conn.execute(
            "alter table vps_instances add column approximate_cost numeric(8,2) default 0.00"
        )
        conn.execute(
            "update vps_instances set approximate_cost = -5 "
            "where id in (select id from vps_instances limit 2)"
        )
        result = ddl.apply(conn, "public", say=_silent)
    assert not result.ok
    assert len(result.failures) == 1
    failure = result.failures[0]
    assert "chk_vps_approximate_cost_positive" in failure
    assert "2 row(s) of public.vps_instances" in failure
    assert "pmcost ddl apply" in failure
    # the NOT VALID constraint still protects new writes; everything else is in place
    with app_db.connect() as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "update vps_instances set approximate_cost = -1 where approximate_cost = 0"
            )
        diffs = ddl.verify(conn, "public")
    assert diffs == [
        "constraint chk_vps_approximate_cost_positive on public.vps_instances: "
        "not validated (existing rows unchecked)"
    ]


def test_invalid_leftover_index_is_rebuilt(app_db: Database) -> None:
    app_db.apply_ddl()
    with app_db.connect() as conn:
        conn.execute("drop index idx_vps_instances_approximate_cost")
        # an interrupted concurrent build leaves an INVALID index behind under the same name
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "create unique index concurrently idx_vps_instances_approximate_cost "
                "on vps_instances (status)"
            )
        assert any("INVALID" in diff for diff in ddl.verify(conn, "public"))
        steps = [step.description for step in ddl.plan(conn, "public").steps]
        assert steps == [
            "drop invalid index public.idx_vps_instances_approximate_cost "
            "(left by an interrupted build)",
            "create index public.idx_vps_instances_approximate_cost concurrently",
        ]
        assert ddl.apply(conn, "public", say=_silent).ok
        assert ddl.verify(conn, "public") == []


def test_column_of_another_type_is_reported_and_left_alone(app_db: Database) -> None:
    with app_db.connect() as conn:
        conn.execute("alter table smtp_ip_addresses add column approximate_cost integer")
        conn.execute(
            "alter table vps_instances add constraint chk_vps_approximate_cost_positive "
            "check (true)"
        )
        result = ddl.apply(conn, "public", say=_silent)
        assert not result.ok
        assert any(
            "smtp_ip_addresses.approximate_cost exists as integer" in conflict
            for conflict in result.conflicts
        )
        assert any(
            "chk_vps_approximate_cost_positive" in conflict and "left alone" in conflict
            for conflict in result.conflicts
        )
        column_type = conn.execute(
            "select format_type(atttypid, atttypmod) from pg_attribute "
            "where attrelid = 'smtp_ip_addresses'::regclass and attname = 'approximate_cost'"
        ).fetchone()
        assert column_type == ("integer",)
        assert ddl.verify(conn, "public") != []


def test_rollback_keeps_columns_unless_confirmed(app_db: Database) -> None:
    app_db.apply_ddl()
    app_db.query(
        "update vps_instances set approximate_cost = 12.34 "
        "where id in (select id from vps_instances limit 3) returning id"
    )
    refused = app_db.pmcost("ddl", "rollback", "--target", "postgres", "--drop-columns")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert app_db.query("select count(*) from pg_constraint where conname like 'chk_%'") == [(2,)]

    kept = app_db.pmcost("ddl", "rollback", "--target", "postgres", check=True)
    assert "drop index" in kept.stdout
    assert app_db.query("select count(*) from vps_instances where approximate_cost = 12.34") == [
        (3,)
    ]
    assert app_db.query("select count(*) from pg_constraint where conname like 'chk_%'") == [(0,)]
    assert app_db.query("select count(*) from pg_class where relname like 'idx_%cost'") == [(0,)]

    app_db.pmcost("ddl", "rollback", "--target", "postgres", "--drop-columns", "--yes", check=True)
    assert app_db.query(
        "select count(*) from information_schema.columns where column_name = 'approximate_cost'"
    ) == [(0,)]


def test_plan_prints_statements_and_changes_nothing(app_db: Database) -> None:
    planned = app_db.pmcost("ddl", "plan", "--target", "postgres", check=True)
    assert planned.stdout.count(";\n") == 10
    assert "create index concurrently" in planned.stdout
    assert app_db.query(
        "select count(*) from information_schema.columns where column_name = 'approximate_cost'"
    ) == [(0,)]
    app_db.pmcost("ddl", "apply", "--target", "postgres", check=True)
    assert app_db.pmcost("ddl", "plan", "--target", "postgres", check=True).stdout == ""
    verified = app_db.pmcost("ddl", "verify", "--target", "postgres", check=True)
    assert "verify: OK" in verified.stdout


def test_missing_application_table_is_a_clear_error(database: Database) -> None:
    result = database.pmcost("ddl", "apply", "--target", "postgres")
    assert result.returncode == 1
    assert "table public.vps_instances not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_exclusive_lock_during_planning_is_retried_and_its_holder_named(
    app_db: Database,
) -> None:
    """Finding 7: an ACCESS EXCLUSIVE lock on vps_instances made `ddl apply` and `refresh` fail
    after 3 s with a raw "canceling statement due to lock timeout": the planning query ran
    outside the retry loop (it reads column defaults with pg_get_expr, which opens the table)."""
    assert app_db.apply_ddl().ok  # an application already migrated: only the plan runs
    with app_db.connect(autocommit=False) as holder:
        holder.execute("set application_name = 'app-migration'")
        holder.execute("lock table vps_instances in access exclusive mode")
        pid = holder.execute("select pg_backend_pid()").fetchone()[0]
        options = ("--target", "postgres", "--lock-timeout-ms", "100", "--max-attempts", "3")
        # the refresh for the demo's day: its feeds are current then (freshness runs first)
        for command in (("ddl", "apply"), ("refresh", "--as-of", ANCHOR.isoformat())):
            result = app_db.pmcost(*command, *options)
            assert result.returncode == 1, result.stdout + result.stderr
            assert "canceling statement" not in result.stderr
            assert "gave up after 3 lock timeouts of 100 ms" in result.stderr
            assert f"pid {pid}" in result.stderr and "app-migration" in result.stderr
            assert "AccessExclusiveLock" in result.stderr
            assert "retry 1/2" in result.stdout  # it did retry, with backoff
            assert "reading the catalog to plan" in result.stderr

        # released once apply has timed out on it and is retrying (its first `waiting:` line,
        # not a timer, which could fire before a slow start-up reached the lock): apply then
        # finishes
        with subprocess.Popen(
            [
                str(BIN / "pmcost"),
                "ddl",
                "apply",
                "--target",
                "postgres",
                "--lock-timeout-ms",
                "200",
            ],
            cwd=PROJECT,
            env=app_db.env() | {"PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as apply:
            assert apply.stdout is not None
            seen = []
            for line in apply.stdout:
                seen.append(line)
                if "waiting: reading the catalog to plan" in line:
                    holder.rollback()
                    break
            rest, errors = apply.communicate(timeout=120)
    output = "".join(seen) + rest
    assert apply.returncode == 0, output + errors
    assert "waiting: reading the catalog to plan" in output
    with app_db.connect() as conn:
        assert ddl.verify(conn, "public") == []
