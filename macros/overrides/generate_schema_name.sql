{#- Overrides dbt's built-in generate_schema_name, in the pattern of dbt's documentation on
    custom schemas: `<target schema>_<custom schema>`, except two names.

    Write-audit-publish: every model a reader uses (the marts folder, custom schema
    `published`) is built into a candidate schema, `<target schema>_candidate`, tested there,
    and switched in by `pmcost publish` (or `pmcost refresh`) in one transaction, only when the
    whole build passed and the guards hold. Nothing a plain `dbt build` does changes what
    dashboards read.

    The snapshots (custom schema `snapshots`) are published the same way: a build captures
    their new versions into `<target schema>_snapshots_candidate`, a copy of the published
    snapshots (prepare_candidate_snapshots), and the publish switches that schema in with
    the marts. A run that does not publish leaves the snapshots as they were.

    Outside production (targets `dev` and `ci`) both are the target's own schemas, built
    directly (publication_schema). Every other custom schema keeps dbt's default naming,
    `<target schema>_<custom>`, in every target. -#}

{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif custom_schema_name | trim == 'published' -%}
        {{ publication_schema() }}
    {%- elif custom_schema_name | trim == 'snapshots' -%}
        {{ snapshot_schema() }}
    {%- else -%}
        {{ target.schema }}_{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
