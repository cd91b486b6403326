"""Connections for pmcost's own work (demo data, pre-hook, checks), with actionable errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from pmcost.errors import PmcostError
from pmcost.server import EmbeddedServer, ServerInfo
from pmcost.settings import Target, state_dir


def conninfo_for(target: Target) -> str:
    """The embedded server's details, or "" so libpq reads PGHOST, PGPORT, PGUSER, ... itself."""
    if target.is_embedded:
        return EmbeddedServer(state_dir()).require().conninfo()
    return ""


def describe(conninfo: str) -> str:
    """host:port/dbname as libpq will resolve it, for messages (never the password)."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER") or os.environ.get("USER", "")
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user
    return f"{user}@{host}:{port}/{dbname}"


def explain_connection_error(error: psycopg.OperationalError, conninfo: str) -> PmcostError:
    where = describe(conninfo)
    text = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    lowered = str(error).lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        fix = "check PGUSER/PGPASSWORD (or ~/.pgpass) for this server"
    elif "does not exist" in lowered and "database" in lowered:
        fix = "create the database or set PGDATABASE to an existing one"
    elif "connection refused" in lowered or "could not connect" in lowered or "timeout" in lowered:
        fix = "start it, or check PGHOST/PGPORT; for the embedded server run `pmcost up`"
    else:
        fix = "check the PG* variables and that the server accepts connections"
    return PmcostError(f"cannot connect to PostgreSQL at {where}: {text}; {fix}")


def connect(conninfo: str, *, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, application_name="pmcost")
    except psycopg.OperationalError as error:
        raise explain_connection_error(error, conninfo) from error


@contextmanager
def connection(target: Target, *, autocommit: bool = True) -> Iterator[psycopg.Connection]:
    conn = connect(conninfo_for(target), autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def embedded_info() -> ServerInfo:
    return EmbeddedServer(state_dir()).require()
