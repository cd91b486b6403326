"""The command line: help for every subcommand, and one clear line for each bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pmcost.cli import build_parser, main
from pmcost.dbt import EMBEDDED_SESSION_OPTIONS, dbt_environment
from pmcost.server import ServerInfo
from pmcost.settings import Target

from .conftest import ANCHOR, BIN, PROJECT, Database

SUBCOMMANDS = ["up", "down", "status", "env", "demo-data", "ddl", "refresh", "dbt", "psql", "build"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`pmcost <command> --help`, through the console script's entry point in this process
    (the script itself starts in the tests that run `pmcost` as a process)."""
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0, capsys.readouterr().err
    assert "usage: pmcost" in capsys.readouterr().out


def test_parser_knows_every_subcommand() -> None:
    parser = build_parser()
    for command in SUBCOMMANDS:
        assert parser.parse_args([command] if command not in ("ddl",) else [command, "plan"])


def test_dbt_logs_to_its_file_at_info_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """logs/dbt.log at debug costs every refresh about 7% (each statement written and
    flushed); pmcost asks for info, and an operator's DBT_LOG_LEVEL_FILE wins."""
    target = Target(name="postgres", app_schema="public")
    monkeypatch.delenv("DBT_LOG_LEVEL_FILE", raising=False)
    assert dbt_environment(target)["DBT_LOG_LEVEL_FILE"] == "info"
    monkeypatch.setenv("DBT_LOG_LEVEL_FILE", "debug")
    assert dbt_environment(target)["DBT_LOG_LEVEL_FILE"] == "debug"


def test_dbt_sessions_on_the_embedded_server_plan_without_parallel_workers(
    monkeypatch: pytest.MonkeyPatch, server_state: Path, server: ServerInfo
) -> None:
    """dbt runs a thread per core beside the embedded server, so a parallel plan only adds
    its workers' cost: dbt's sessions get no parallel workers through libpq's PGOPTIONS. An
    operator's own options come after (they win), and the setting is added once however
    often a process applies the environment (a long-lived Dagster process does)."""
    # the server's own default stays: other sessions (dashboards, the limit) plan as before
    monkeypatch.delenv("PGOPTIONS", raising=False)
    with psycopg.connect(server.conninfo()) as conn:
        assert conn.execute("show max_parallel_workers_per_gather").fetchone() != ("0",)
    monkeypatch.setenv("PMCOST_STATE_DIR", str(server_state))
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=600000")
    embedded = Target(name="embedded", app_schema="public")
    env = dbt_environment(embedded)
    assert env["PGOPTIONS"] == f"{EMBEDDED_SESSION_OPTIONS} -c statement_timeout=600000"
    monkeypatch.setenv("PGOPTIONS", env["PGOPTIONS"])
    assert dbt_environment(embedded)["PGOPTIONS"] == env["PGOPTIONS"]
    # a connection opened as dbt-postgres opens one (psycopg2, no `options` of its own)
    opened = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, psycopg2\n"
            "c = psycopg2.connect(host=os.environ['PGHOST'], "
            "port=int(os.environ['PGPORT']), "
            "user=os.environ['PGUSER'], "
            "password=os.environ['PGPASSWORD'], "
            "dbname=os.environ['PGDATABASE'], connect_timeout=10)\n"
            "cur = c.cursor()\n"
            "cur.execute(\"select current_setting('max_parallel_workers_per_gather'), "
            "current_setting('statement_timeout')\")\n"
            "print(*cur.fetchone())",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.split() == ["0", "10min"]
    # and a target of the user's own PostgreSQL is left as the user set it
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=600000")
    assert dbt_environment(Target(name="postgres", app_schema="public"))["PGOPTIONS"] == (
        "-c statement_timeout=600000"
    )


def test_bad_as_of_date_is_rejected_before_anything_runs(database: Database) -> None:
    result = database.pmcost("refresh", "--target", "postgres", "--as-of", "2026-13-40")
    assert result.returncode == 2
    assert "'2026-13-40' is not a date; use YYYY-MM-DD" in result.stderr


def test_wrong_password_is_one_clear_line(database: Database) -> None:
    env = database.env()
    env["PGPASSWORD"] = "not-the-password"
    result = subprocess.run(
        [str(BIN / "pmcost"), "ddl", "verify", "--target", "postgres"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "password authentication failed" in result.stderr
    assert "check PGUSER/PGPASSWORD" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_stopped_server_is_one_clear_line(database: Database) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = database.env()
    env["PGPORT"] = str(closed_port)
    result = subprocess.run(
        [str(BIN / "pmcost"), "refresh", "--target", "postgres"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot connect to PostgreSQL at pmcost@127.0.0.1:{closed_port}" in result.stderr
    assert "pmcost up" in result.stderr


def test_embedded_commands_say_how_to_start_the_server(database: Database, tmp_path) -> None:
    env = database.env()
    env["PMCOST_STATE_DIR"] = str(tmp_path / "no-server")
    result = subprocess.run(
        [str(BIN / "pmcost"), "ddl", "plan", "--target", "embedded"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT,
    )
    assert result.returncode == 1
    assert "the embedded PostgreSQL is not running; start it with `pmcost up`" in result.stderr
    status = subprocess.run(
        [str(BIN / "pmcost"), "status"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT,
    )
    assert status.returncode == 3
    assert "stopped" in status.stdout


def _json_lines(output: str) -> list[dict]:
    lines = [line for line in output.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # a plain line fails here


def test_json_logs_carry_pmcost_messages_beside_dbt_events(built: Database) -> None:
    """With --log-format json every line of a refresh is JSON, dbt's events and pmcost's own;
    $DBT_LOG_FORMAT=json alone does the same, errors included."""
    # a process of its own: what a scheduler's log gets on the process's stdout and stderr
    result = built.pmcost(
        "--log-format",
        "json",
        "refresh",
        "--target",
        "postgres",
        "--as-of",
        ANCHOR.isoformat(),
        process=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    records = _json_lines(result.stdout) + _json_lines(result.stderr)
    ours = [entry["info"] for entry in records if entry["info"]["name"] == "PmcostMessage"]
    theirs = {entry["info"]["name"] for entry in records} - {"PmcostMessage"}
    assert any(info["msg"].startswith("publish: 10 tables switched in") for info in ours)
    assert any(info["msg"] == "refresh: OK (published)" for info in ours)
    assert {info["level"] for info in ours} == {"info"}
    assert all(info["ts"].endswith("Z") for info in ours)
    assert "MainReportVersion" in theirs and "LogModelResult" in theirs

    env = built.env() | {"DBT_LOG_FORMAT": "json"}
    refused = subprocess.run(
        [str(BIN / "pmcost"), "refresh", "--target", "postgres", "--as-of", "1900-01-01"],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    (error,) = _json_lines(refused.stderr)
    assert error["info"]["level"] == "error"
    assert error["info"]["msg"].startswith("pmcost: error: --as-of 1900-01-01 is before")
    # data for a shell stays plain: eval "$(pmcost env)" keeps working
    exported = subprocess.run(
        [str(BIN / "pmcost"), "env"], env=env, capture_output=True, text=True, check=False
    )
    shown = (exported.stdout + exported.stderr).strip()
    assert shown and not shown.startswith("{")
