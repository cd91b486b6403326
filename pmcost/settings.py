"""Where the project lives and which database a command talks to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pmcost.errors import PmcostError

DEFAULT_APP_SCHEMA = "public"
DEFAULT_TARGET = "embedded"


def project_dir() -> Path:
    """The dbt project: $PMCOST_PROJECT_DIR, else the nearest parent holding dbt_project.yml."""
    override = os.environ.get("PMCOST_PROJECT_DIR")
    if override:
        path = Path(override).resolve()
        if not (path / "dbt_project.yml").is_file():
            raise PmcostError(
                f"PMCOST_PROJECT_DIR={override} has no dbt_project.yml; point it at the repo"
            )
        return path
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "dbt_project.yml").is_file():
                return candidate
    raise PmcostError("no dbt_project.yml found here or above; run pmcost from inside the repo")


def state_dir() -> Path:
    """The one ignored folder that holds the embedded server and generated files."""
    override = os.environ.get("PMCOST_STATE_DIR")
    return Path(override).resolve() if override else project_dir() / ".pmcost"


@dataclass(frozen=True)
class Target:
    """A database to work on: the embedded server, or a real PostgreSQL through PG* variables."""

    name: str
    app_schema: str = DEFAULT_APP_SCHEMA

    @property
    def is_embedded(self) -> bool:
        return self.name == "embedded"
