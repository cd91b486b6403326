"""Every model, column, seed, source and macro described; every model has a primary-key test.

Read from dbt's own artefacts (manifest.json and catalog.json), so there is no hand-kept list
that could drift from the project.
"""

from __future__ import annotations

import json

import pytest

from .conftest import Database

PK_TESTS = {"unique", "unique_combination_of_columns"}


@pytest.fixture(scope="module")
def artefacts(built_template: str, server, tmp_path_factory, profiles_dir) -> tuple[dict, dict]:
    database = Database(
        server=server,
        name=built_template,
        work_dir=tmp_path_factory.mktemp("docs"),
        profiles_dir=profiles_dir,
    )
    database.dbt("docs", "generate", check=True, extra_vars={"publish_stage": "published"})
    target = database.work_dir / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    return manifest, catalog


def _project_nodes(manifest: dict, resource_type: str) -> list[dict]:
    return [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == resource_type and node["package_name"] == "pmcost"
    ]


def test_every_model_and_seed_and_their_columns_are_described(artefacts) -> None:
    manifest, catalog = artefacts
    missing: list[str] = []
    for kind in ("model", "seed"):
        for node in _project_nodes(manifest, kind):
            if not node["description"].strip():
                missing.append(f"{kind} {node['name']}")
            if node["config"]["materialized"] == "ephemeral":  # no relation: its YAML columns
                built_columns = node["columns"]
                assert built_columns, f"{node['name']} documents no columns"
            else:
                built_columns = catalog["nodes"][node["unique_id"]]["columns"]
            for column in built_columns:
                documented = node["columns"].get(column, {}).get("description", "").strip()
                if not documented:
                    missing.append(f"{kind} {node['name']}.{column}")
    assert missing == []


def test_every_source_table_and_column_is_described(artefacts) -> None:
    manifest, _ = artefacts
    missing = []
    for source in manifest["sources"].values():
        if not source["description"].strip():
            missing.append(source["name"])
        missing += [
            f"{source['name']}.{name}"
            for name, column in source["columns"].items()
            if not column["description"].strip()
        ]
    assert missing == []


def test_every_project_macro_is_described(artefacts) -> None:
    manifest, _ = artefacts
    macros = [macro for macro in manifest["macros"].values() if macro["package_name"] == "pmcost"]
    assert macros
    assert [macro["name"] for macro in macros if not macro["description"].strip()] == []


def test_every_model_has_a_primary_key_test(artefacts) -> None:
    manifest, _ = artefacts
    keyed: set[str] = set()
    not_null: set[tuple[str, str]] = set()
    unique: set[tuple[str, str]] = set()
    for test in _project_nodes(manifest, "test"):
        metadata = test.get("test_metadata") or {}
        model = test.get("attached_node") or ""
        column = test.get("column_name") or ""
        if metadata.get("name") == "unique_combination_of_columns":
            keyed.add(model)
        elif metadata.get("name") == "unique":
            unique.add((model, column))
        elif metadata.get("name") == "not_null":
            not_null.add((model, column))
    keyed |= {model for model, column in unique & not_null}
    models = {node["unique_id"] for node in _project_nodes(manifest, "model")}
    assert sorted(models - keyed) == []
