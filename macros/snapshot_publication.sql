{#- Snapshots are published with the marts (macros/publication.sql): a candidate build
    captures their new versions into a copy of the published snapshots, and `pmcost publish`
    switches that schema in with the marts, so a run that does not publish (a failed test, a
    guard, a signal, a kill) leaves the published snapshots exactly as they were.

    on-run-start of `dbt build`, `dbt run` and `dbt snapshot` into the candidate: every
    published snapshot is copied into the candidate snapshot schema afresh (a copy left by
    an earlier invocation may hold versions its failed build captured), and repaired on the
    way in (repair_snapshot: versions captured by runs that never published, which earlier
    versions of the project wrote straight into the published snapshots, are removed; the
    next publish switches the repaired copy in). A snapshot never published yet is captured
    anew by an invocation that runs it, and kept from the last one otherwise (the publish
    then refuses a build that did not capture it). -#}
{% macro prepare_candidate_snapshots() %}
    {%- if execute and flags.WHICH in ('build', 'run', 'snapshot') and publication_schema() != target.schema -%}
        {%- set candidate = snapshot_schema() -%}
        {%- set published = published_snapshot_schema() -%}
        {%- do adapter.create_schema(api.Relation.create(database=target.database, schema=candidate)) -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'snapshot' -%}
            {%- set source = adapter.get_relation(target.database, published, node.alias) -%}
            {%- set left = adapter.get_relation(target.database, candidate, node.alias) -%}
            {%- if left is not none and (source is not none or node.unique_id in selected_resources) -%}
                {%- do adapter.drop_relation(left) -%}
            {%- endif -%}
            {%- if source is not none -%}
                {%- set copy = api.Relation.create(
                    database=target.database, schema=candidate, identifier=node.alias, type='table'
                ) -%}
                {%- do run_query(
                    "create table " ~ copy ~ " (like " ~ source ~ " including defaults); "
                    ~ "insert into " ~ copy ~ " select * from " ~ source
                ) -%}
                {%- do adapter.cache_added(copy) -%}
                {%- do repair_snapshot(copy, node) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif %}
    select 'snapshots ready' as pmcost_check
{% endmacro %}


{#- `dbt run-operation repair_snapshots` (`pmcost snapshots repair`): repair the published
    snapshots in place, all in one transaction. Run it while no refresh runs (pmcost takes
    the refresh lock); a refresh does the same on its candidate copies by itself. -#}
{% macro repair_snapshots() %}
    {%- set published = published_snapshot_schema() -%}
    {%- set removed = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'snapshot' -%}
        {%- set relation = adapter.get_relation(target.database, published, node.alias) -%}
        {%- if relation is not none -%}
            {%- do removed.append(repair_snapshot(relation, node)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do adapter.commit() if (removed | sum) > 0 -%}
    {{ log("snapshot repair: " ~ (removed | sum) ~ " version(s) removed from " ~ published, info=true) }}
{% endmacro %}


{#- Remove the versions of one snapshot table that no published run used, and return how
    many went. The publication record (<target schema>_publication.published_runs) orders
    the runs: refreshes run one at a time, so the versions captured between two publishes
    come from the run that published last and from runs before it that failed. Per key
    and such window, the latest version is the one the publishing run captured or read,
    and the earlier ones were captured by failed runs: they go, as do versions captured
    after the last publish. A version equal in its tracked columns (check_cols) to the one
    before it then goes too (the failed run's change and its undoing), and dbt_valid_to is
    set again from the versions that remain. Without a publication record nothing can tell
    the versions apart, and the table is left alone.

    dbt_updated_at is the capturing session's local time (dbt-postgres' snapshot_get_time):
    the publish times are read in this session's TimeZone, as dbt's sessions have it. -#}
{% macro repair_snapshot(relation, node) %}
    {%- set audit = api.Relation.create(
        database=target.database, schema=target.schema ~ '_publication', identifier='published_runs'
    ) -%}
    {%- if adapter.get_relation(audit.database, audit.schema, audit.identifier) is none -%}
        {{ return(0) }}
    {%- endif -%}
    {%- set key = node.config.unique_key if node.config.unique_key is string
        else node.config.unique_key | join(", ") -%}
    {%- set tracked = node.config.check_cols if node.config.check_cols is not string else [] -%}
    {%- set same_as_before -%}
        {%- for column in tracked -%}
            {{ adapter.quote(column) }} is not distinct from lag({{ adapter.quote(column) }}) over versions
            {%- if not loop.last %} and {% endif -%}
        {%- endfor -%}
    {%- endset -%}
    {%- set result = run_query(
        "with runs as (select published_at at time zone current_setting('TimeZone') as published_at"
        ~ " from " ~ audit ~ "),"
        ~ " captured as (select dbt_scd_id, dbt_valid_from, row(" ~ key ~ ") as snapshot_key,"
        ~ " (select min(runs.published_at) from runs where runs.published_at >= version.dbt_updated_at)"
        ~ " as published_by from " ~ relation ~ " as version),"
        ~ " unpublished as (select dbt_scd_id from (select dbt_scd_id, published_by, row_number() over ("
        ~ "partition by snapshot_key, published_by order by dbt_valid_from desc) as nth from captured) as ranked"
        ~ " where published_by is null or nth > 1)"
        ~ " delete from " ~ relation ~ " where dbt_scd_id in (select dbt_scd_id from unpublished)"
        ~ " and exists (select from runs) returning 1"
    ) -%}
    {%- set removed = result.rows | length -%}
    {%- if removed > 0 -%}
        {%- if tracked | length > 0 -%}
            {%- set repeated = run_query(
                "delete from " ~ relation ~ " where dbt_scd_id in (select dbt_scd_id from ("
                ~ "select dbt_scd_id, row_number() over versions > 1 and " ~ same_as_before ~ " as repeated"
                ~ " from " ~ relation
                ~ " window versions as (partition by " ~ key ~ " order by dbt_valid_from)) as ordered"
                ~ " where repeated) returning 1"
            ) -%}
            {%- set removed = removed + repeated.rows | length -%}
        {%- endif -%}
        {%- do run_query(
            "update " ~ relation ~ " as version set dbt_valid_to = ordered.next_valid_from from ("
            ~ "select dbt_scd_id, lead(dbt_valid_from) over (partition by " ~ key
            ~ " order by dbt_valid_from) as next_valid_from from " ~ relation ~ ") as ordered"
            ~ " where version.dbt_scd_id = ordered.dbt_scd_id"
            ~ " and version.dbt_valid_to is distinct from ordered.next_valid_from"
        ) -%}
        {{ log("snapshot repair: removed " ~ removed ~ " version(s) of " ~ relation
            ~ " captured by runs that never published", info=true) }}
    {%- endif -%}
    {{ return(removed) }}
{% endmacro %}
