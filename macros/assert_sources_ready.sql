{#- on-run-start: fail fast, with the fix, when the application tables are not ready.
    Every table and column declared in the `app` source must exist in var('app_schema');
    the approximate_cost columns are added by the Python pre-hook (`pmcost ddl apply`),
    which also creates Finance's landing tables (source `finance`). -#}
{% macro assert_sources_ready() %}
    {#- `dbt source freshness` (which `pmcost refresh` runs before the pre-hook) checks the
        application's own tables and columns only: the pre-hook's columns and Finance's
        tables do not exist yet on a first run. -#}
    {%- set freshness = flags.WHICH in ('freshness', 'source', 'source-freshness') -%}
    {%- if execute and (freshness or flags.WHICH in ('build', 'run', 'test', 'seed', 'snapshot')) -%}
        {%- set app_schema = var('app_schema') -%}
        {%- set existing = run_query(
            "select table_name, column_name from information_schema.columns where table_schema = '"
            ~ app_schema | replace("'", "''") ~ "'"
        ) -%}
        {%- set found = {} -%}
        {%- for row in existing.rows -%}
            {%- do found.setdefault(row[0], []).append(row[1]) -%}
        {%- endfor -%}
        {%- set problems = [] -%}
        {%- for source in graph.sources.values() if source.source_name == 'app' -%}
            {%- if source.identifier not in found -%}
                {%- do problems.append(
                    "source table " ~ app_schema ~ "." ~ source.identifier ~ " is missing: "
                    ~ "load the application tables there, or point var app_schema at their schema"
                ) -%}
            {%- else -%}
                {%- for column in source.columns -%}
                    {%- if column not in found[source.identifier] -%}
                        {%- if column == 'approximate_cost' and freshness -%}
                            {#- the pre-hook, after the freshness check, adds it -#}
                        {%- elif column == 'approximate_cost' -%}
                            {%- do problems.append(
                                app_schema ~ "." ~ source.identifier ~ ".approximate_cost is missing: "
                                ~ "run `pmcost ddl apply` (the column DDL pre-hook) before dbt"
                            ) -%}
                        {%- else -%}
                            {%- do problems.append(
                                "source column " ~ app_schema ~ "." ~ source.identifier ~ "." ~ column
                                ~ " is missing: the application schema differs from the one this project reads"
                            ) -%}
                        {%- endif -%}
                    {%- endif -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
        {#- Finance's landing tables: pmcost creates them (ddl apply, invoices/ledger load). -#}
        {%- for source in graph.sources.values() if source.source_name == 'finance' and not freshness -%}
            {%- set landed = run_query(
                "select 1 from information_schema.tables where table_schema = '"
                ~ source.schema | replace("'", "''") ~ "' and table_name = '"
                ~ source.identifier | replace("'", "''") ~ "'"
            ).rows -%}
            {%- if not landed -%}
                {%- do problems.append(
                    "Finance table " ~ source.schema ~ "." ~ source.identifier ~ " is missing: "
                    ~ "run `pmcost ddl apply` (it creates Finance's empty landing tables) before dbt"
                ) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if problems -%}
            {{ exceptions.raise_compiler_error("source tables not ready:\n  - " ~ problems | join("\n  - ")) }}
        {%- endif -%}
    {%- endif -%}
    select 'sources ready' as pmcost_check
{% endmacro %}
