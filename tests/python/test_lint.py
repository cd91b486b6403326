"""SQL style: sqlfluff with the dbt templater (it compiles the project, so it needs a server)."""

from __future__ import annotations

import subprocess

from .conftest import BIN, PROJECT, Database


def test_sqlfluff_is_clean(database: Database) -> None:
    result = subprocess.run(
        [
            str(BIN / "sqlfluff"),
            "lint",
            "models",
            "analyses",
            "snapshots",
            "tests/dbt",
            "--nocolor",
        ],
        cwd=PROJECT,
        env=database.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
