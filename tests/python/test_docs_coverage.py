"""Quality gates from maintained tools, read from dbt's own artefacts (manifest.json and
catalog.json of a docs build), so there is no hand-kept list that could drift:

- dbt-score with the project's thresholds (pyproject.toml [tool.dbt-score]: project >= 9.5,
  no model, seed, snapshot or macro under 8.5): descriptions, owners, example queries on the
  public marts, macro descriptions;
- dbt-coverage: every column of every model, seed, snapshot (dbt's meta-columns included)
  and source described, 100%;
- by hand, what neither tool checks: source table descriptions and the project's
  primary-key rule (the project's primary_key test, on one column or on the key's columns; or
  unique + not_null on one column, the not_null a test or, on a contracted model, the
  column's not_null constraint; or,
  for a model whose key is its source's, meta.primary_key_tested_on naming that source column,
  which must have both; or, for a union of keyed models with a literal discriminator each,
  `union of a, b`, models it reads and that have a primary-key test; an interval table's
  intervals_cover_all_time test is its key test, the partition and valid_from_date).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import BIN, PROJECT, Database


@pytest.fixture(scope="module")
def artefacts(published_docs: Database) -> tuple[dict, dict, Path]:
    target = published_docs.target
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    return manifest, catalog, target


def _run(*command: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def test_dbt_score_meets_the_project_thresholds(artefacts) -> None:
    *_, target = artefacts
    manifest = str(target / "manifest.json")
    result = _run(str(BIN / "dbt-score"), "lint", "--manifest", manifest, "--format", "json")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    scored = json.loads(result.stdout)
    assert scored["project"]["score"] >= 9.5
    kinds = {name.split(".")[0] for name in scored["evaluables"]}
    assert {"model", "seed", "snapshot", "source", "macro"} <= kinds
    low = {
        name: item["score"] for name, item in scored["evaluables"].items() if item["score"] < 8.5
    }
    assert low == {}


def test_dbt_coverage_documents_every_column(artefacts, tmp_path: Path) -> None:
    *_, target = artefacts
    report = tmp_path / "coverage.json"
    result = _run(
        str(BIN / "dbt-coverage"),
        "compute",
        "doc",
        "--project-dir",
        str(PROJECT),
        "--run-artifacts-dir",
        str(target),
        "--cov-report",
        str(report),
        "--cov-fail-under",
        "1.0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    covered = json.loads(report.read_text())
    names = {table["name"].split(".")[-1] for table in covered["tables"]}
    # snapshots (with dbt's meta-columns), seeds, sources and every layer are counted
    assert {"snap_app__plans", "vps_price_list", "billing_analytics"} <= names
    assert {
        "stg_app__payments",
        "int_tenant_resource_cost_daily",
        "fct_tenant_economics_daily",
    } <= names
    assert covered["covered"] == covered["total"] > 400


def _project_nodes(manifest: dict, resource_type: str) -> list[dict]:
    return [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == resource_type and node["package_name"] == "pmcost"
    ]


def test_every_source_table_is_described(artefacts) -> None:
    manifest, *_ = artefacts
    missing = [
        f"{source['source_name']}.{source['name']}"
        for source in manifest["sources"].values()
        if not source["description"].strip()
    ]
    assert manifest["sources"] and missing == []


def test_every_model_has_a_primary_key_test(artefacts) -> None:
    manifest, *_ = artefacts
    keyed: set[str] = set()
    not_null: set[tuple[str, str]] = set()
    unique: set[tuple[str, str]] = set()
    for test in _project_nodes(manifest, "test"):
        metadata = test.get("test_metadata") or {}
        model = test.get("attached_node") or ""
        if not model:  # a test on a source column names the source among its dependencies
            model = next((n for n in test["depends_on"]["nodes"] if n.startswith("source.")), "")
        column = test.get("column_name") or ""
        if metadata.get("name") in ("primary_key", "intervals_cover_all_time"):
            keyed.add(model)
        elif metadata.get("name") == "unique":
            unique.add((model, column))
        elif metadata.get("name") == "not_null":
            not_null.add((model, column))
        elif metadata.get("name") == "enforced_primary_key":  # the database's own key
            unique.add((model, column))
            not_null.add((model, column))
    # a contracted model's not_null constraint is enforced by PostgreSQL in the build itself
    for node in _project_nodes(manifest, "model"):
        if (node["config"].get("contract") or {}).get("enforced"):
            not_null |= {
                (node["unique_id"], name)
                for name, column in node["columns"].items()
                if any(c["type"] == "not_null" for c in column.get("constraints") or [])
            }
    keyed |= {model for model, column in unique & not_null}
    # a model whose key is its source's key, renamed, names the source column it is tested on
    source_keys = {
        f"source {source['source_name']}.{source['name']}.{column}": source["unique_id"]
        for source in manifest["sources"].values()
        for column in source["columns"]
    }
    # a union of keyed models, each with a literal discriminator (resource_type), names them:
    # it must read each (directly or through ephemeral models), and each must be keyed
    models_by_name = {node["name"]: node for node in _project_nodes(manifest, "model")}

    def upstream(node: dict) -> set[str]:  # what it reads, through ephemeral models
        found: set[str] = set()
        for parent in node["depends_on"]["nodes"]:
            found.add(parent)
            parent_node = manifest["nodes"].get(parent) or {}
            if (parent_node.get("config") or {}).get("materialized") == "ephemeral":
                found |= upstream(parent_node)
        return found

    for node in _project_nodes(manifest, "model"):
        named = (node["config"].get("meta") or {}).get("primary_key_tested_on")
        if named and named.startswith("union of "):
            for part in named.removeprefix("union of ").split(", "):
                part_id = models_by_name[part]["unique_id"]
                assert part_id in upstream(node), f"{node['name']} does not read {part}"
                assert part_id in keyed, f"{part} has no primary-key test"
            keyed.add(node["unique_id"])
        elif named:
            source_id = source_keys[named]
            column = named.rsplit(".", 1)[1]
            assert (source_id, column) in unique & not_null, f"{named} lacks a key test"
            keyed.add(node["unique_id"])
    models = {node["unique_id"] for node in _project_nodes(manifest, "model")}
    assert sorted(models - keyed) == []
