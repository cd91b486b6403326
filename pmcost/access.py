"""The roles of the guide's access matrix, created for the embedded/demo database.

On a real server the roles are the DBA's business: dbt's on-run-start names any that is
missing. The demo creates them as NOLOGIN group roles (log in as a member, or `set role` as a
superuser) and keeps Finance's approximate_cost columns away from the tenant-facing
application service with column privileges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psycopg
from psycopg import sql

ANALYSTS = "business_analysts"
APPLICATION = "application_service"
ADMINISTRATORS = "db_administrators"
GROUP_ROLES = (ANALYSTS, APPLICATION, ADMINISTRATORS)
INTERNAL_COLUMNS = {
    "vps_instances": ("approximate_cost",),
    "smtp_ip_addresses": ("approximate_cost",),
}


def ensure_group_roles(conn: psycopg.Connection) -> list[str]:
    """Create the missing NOLOGIN group roles; returns the ones created."""
    created = []
    for role in GROUP_ROLES:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
        if exists is None:
            try:
                conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
                created.append(role)
            except psycopg.errors.DuplicateObject:  # created by a concurrent run
                pass
    return created


def grant_application_columns(
    conn: psycopg.Connection, schema: str, tables: Mapping[str, Sequence[str]]
) -> None:
    """Let the application service read the application tables, except Finance's cost columns.

    Column privileges: approximate_cost (added later by the pre-hook) is not among them, so a
    tenant-facing session gets "permission denied" when it asks for it.
    """
    conn.execute(
        sql.SQL("grant usage on schema {} to {}").format(
            sql.Identifier(schema), sql.Identifier(APPLICATION)
        )
    )
    for table, columns in tables.items():
        hidden = INTERNAL_COLUMNS.get(table, ())
        visible = [name for name in columns if name not in hidden]
        conn.execute(
            sql.SQL("grant select ({}) on {}.{} to {}").format(
                sql.SQL(", ").join(sql.Identifier(name) for name in visible),
                sql.Identifier(schema),
                sql.Identifier(table),
                sql.Identifier(APPLICATION),
            )
        )
