"""dbt as analysts use it: the default target is a person's own development schemas, where
every plain dbt and MetricFlow command works with no extra flags and never touches
production; pointed at production, the same commands read the published relations; two
analysts and the scheduled refresh run at once; slim CI builds what a change touches,
deferring to production."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from datetime import timedelta
from pathlib import Path

from pmcost.dbt import day_environment, project_config

from .conftest import ANCHOR, BIN, PROJECT, Database, project_copy
from .test_publication import fingerprint

MART = "executive_business_summary"
DEV_HISTORY_DAYS = int(project_config()["vars"]["dev_history_days"])
HISTORY = (
    "select count(distinct economics_date), min(economics_date) from {}.fct_tenant_economics_daily"
)


def dev_env(database: Database, user: str) -> dict[str, str]:
    """An analyst's shell after `eval "$(pmcost env)"`: the libpq variables and their login
    name; no target, no vars (the profile's `dev`) and dbt's own target/ and logs/ in their
    checkout. The demo data is anchored on the tests' day, which the as-of variable names."""
    env = database.env() | day_environment(ANCHOR) | {"USER": user}
    for name in ("PMCOST_TARGET", "DBT_DEV_SCHEMA", "DBT_TARGET", "DBT_TARGET_PATH"):
        env.pop(name, None)
    env.pop("DBT_LOG_PATH")
    return env


def run(
    command: list[str], env: dict[str, str], cwd: Path = PROJECT
) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def schemas(database: Database, prefix: str) -> set[str]:
    return {
        row[0]
        for row in database.query(
            "select nspname from pg_namespace where nspname like %s",
            (prefix.replace("_", r"\_") + "%",),
        )
    }


def test_two_analysts_and_the_refresh_at_once_then_every_dev_command(
    built: Database, tmp_path: Path
) -> None:
    alice, bob = (dev_env(built, user) for user in ("alice", "bob"))
    # each in a checkout of their own
    checkouts = {user: project_copy(tmp_path / user) for user in ("alice", "bob")}
    # each has parsed their checkout before (dbt keeps target/partial_parse.msgpack), as the
    # refresh's processes start from the deployment's kept state: a new dbt process that
    # parses the project in full spends about 3 s more building dbt's schemas than one that
    # parses again, and alice's parse also serves her commands below
    for user, env in (("alice", alice), ("bob", bob)):
        parsed = built.plain_dbt("parse", env=env, cwd=checkouts[user])
        assert parsed.returncode == 0, parsed.stdout[-3000:]
    built.seed_parse_states()
    # two analysts' `dbt build` and the scheduled refresh, all at once
    started = [
        subprocess.Popen(
            [str(BIN / "dbt"), "build"],
            cwd=checkouts[user],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for user, env in (("alice", alice), ("bob", bob))
    ]
    refresh = subprocess.Popen(
        [str(BIN / "pmcost"), "refresh", "--target", "postgres", "--as-of", ANCHOR.isoformat()],
        cwd=PROJECT,
        env=built.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    outputs = [process.communicate(timeout=600)[0] for process in [*started, refresh]]
    for process, output in zip([*started, refresh], outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    # each wrote its own schemas only; the refresh published production
    suffixes = {"", "_staging", "_intermediate", "_utilities", "_reference", "_snapshots"}
    assert schemas(built, "dbt_alice") == {f"dbt_alice{suffix}" for suffix in suffixes}
    assert schemas(built, "dbt_bob") == {f"dbt_bob{suffix}" for suffix in suffixes}
    assert built.query("select count(*) from analytics_publication.published_runs")[0][0] == 2
    digest = f"select md5(string_agg(t::text, '|' order by t::text)) from {{}}.{MART} as t"
    published = built.query(digest.format("analytics"))
    assert (
        built.query(digest.format("dbt_alice"))
        == built.query(digest.format("dbt_bob"))
        == published
    )

    # a first development build computes weeks of daily history (var dev_history_days), as
    # production has, for weekly metrics and the anomaly baseline
    dev_history = [(DEV_HISTORY_DAYS + 1, ANCHOR - timedelta(days=DEV_HISTORY_DAYS))]
    assert built.query(HISTORY.format("dbt_alice")) == dev_history

    # slim CI, from the artefacts the refresh left: a change to one mart is built and
    # tested with its children, in a CI schema, reading everything else from production
    _slim_ci(built, tmp_path)

    # then the rest of the analysts' loop, as dbt's documentation writes each command: it
    # works, reads what alice's development build wrote, and production is unchanged
    production = fingerprint(built)
    checkout = checkouts["alice"]
    for command in (
        ["build", "--select", f"+{MART}+"],
        ["run", "--select", MART],
        ["test", "--select", MART],
        ["show", "--select", MART, "--limit", "3"],
        ["docs", "generate"],
        ["source", "freshness"],
    ):
        result = built.plain_dbt(*command, env=alice, cwd=checkout)
        assert result.returncode == 0, (command, result.stdout[-3000:])
    listed = built.plain_dbt(*LIST_MART, env=alice, cwd=checkout)
    assert listed.returncode == 0 and '"schema": "dbt_alice"' in listed.stdout, listed.stdout
    # MetricFlow reads <project>/target/semantic_manifest.json, which her builds wrote
    manifest = json.loads((checkout / "target" / "semantic_manifest.json").read_text())
    relations = {model["node_relation"]["schema_name"] for model in manifest["semantic_models"]}
    assert relations == {"dbt_alice"}
    # her later builds recomputed the lookback and kept the weeks before it
    assert built.query(HISTORY.format("dbt_alice")) == dev_history
    weekly = tmp_path / "weekly.csv"
    for command in (
        [
            *(str(BIN / "mf"), "query", "--metrics", "revenue"),
            *("--group-by", "metric_time__week", "--csv", str(weekly)),
        ],
        [str(BIN / "mf"), "validate-configs"],
    ):
        result = run(command, alice, cwd=checkout)
        assert result.returncode == 0, (command, result.stdout[-3000:] + result.stderr[-2000:])
    with weekly.open() as handle:
        assert len(list(csv.DictReader(handle))) >= 9  # 63 days span nine weeks or ten
    assert fingerprint(built) == production


LIST_MART = (
    "ls",
    "--select",
    MART,
    "--resource-type",
    "model",
    "--output",
    "json",
    "--output-keys",
    "name schema",
)


def test_production_commands_read_the_published_relations(built: Database) -> None:
    """The same commands pointed at production read what dashboards read; a plain build
    there would write it in place, untested: it stops, names the ways that publish, and
    writes nothing."""
    before = fingerprint(built)
    prod = built.env() | day_environment(ANCHOR)
    shown = built.plain_dbt("show", "--target", "prod", "--select", MART, env=prod)
    assert shown.returncode == 0, shown.stdout[-3000:]
    listed = built.plain_dbt(*LIST_MART, "--target", "prod", env=prod)
    assert '"schema": "analytics"' in listed.stdout and "candidate" not in listed.stdout
    tested = built.plain_dbt("test", "--target", "prod", "--select", MART, env=prod)
    assert tested.returncode == 0, tested.stdout[-3000:]
    refused = built.plain_dbt("build", "--target", "prod", env=prod)
    assert refused.returncode != 0
    assert "would write production's published tables in place" in refused.stdout
    assert "pmcost refresh" in refused.stdout and "publish_stage: candidate" in refused.stdout
    assert fingerprint(built) == before


def _slim_ci(built: Database, tmp_path: Path) -> None:
    """README's slim CI recipe, after a refresh: production's state is what the refresh
    leaves in target/production."""
    state = built.target / "production"
    assert (state / "manifest.json").is_file()
    production = fingerprint(built)

    # a change to one mart, in a checkout of the project
    (tmp_path / "ci").mkdir()
    project = project_copy(tmp_path / "ci")
    changed = project / "models" / "marts" / "finance" / "business_cost_allocation.sql"
    changed.write_text(changed.read_text() + "\n-- reviewed: cost per email wording\n")
    env = built.env() | day_environment(ANCHOR) | {"DBT_CI_SCHEMA": "ci_pr_42"}
    env["DBT_TARGET_PATH"] = str(project / "target")
    result = built.plain_dbt(
        "build",
        "--target",
        "ci",
        "--select",
        "state:modified+",
        "--defer",
        "--state",
        str(state),
        "--project-dir",
        str(project),
        env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    built_models = {
        r["unique_id"].split(".")[-1] for r in results if r["unique_id"].startswith("model.")
    }
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    children = {
        node.split(".")[-1]
        for node in manifest["child_map"]["model.pmcost.business_cost_allocation"]
        if node.startswith("model.")
    }
    assert built_models == {"business_cost_allocation", *children}
    # in the CI schema, its unchanged parents read from production
    assert built.query(
        "select count(*) from pg_tables "
        "where schemaname = 'ci_pr_42' and tablename = 'business_cost_allocation'"
    ) == [(1,)]
    compiled = next(r for r in results if r["unique_id"] == "model.pmcost.business_cost_allocation")
    read = set(
        re.findall(r'"[a-z_0-9]+"\."([a-z_0-9]+)"\."([a-z_0-9]+)"', compiled["compiled_code"])
    )
    assert ("analytics", "fct_tenant_economics_daily") in read
    assert read and all(schema.startswith("analytics") for schema, _ in read), read
    assert fingerprint(built) == production
