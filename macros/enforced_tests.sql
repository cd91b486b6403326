{#- dbt's `unique` and `not_null` tests on PostgreSQL, without the scan when the database
    already guarantees the answer: a `unique` test on a column with a valid unique index of
    its own (a primary key, a unique constraint or index on exactly that column, no WHERE, no
    expression), or a `not_null` test on a column declared NOT NULL, returns no rows from the
    catalog alone. Anything else (a view, an ephemeral model, a `where` config, no such
    index) runs dbt's usual query. The check is an uncorrelated sub-select, so PostgreSQL
    evaluates it once and skips the table scan when it holds (a One-Time Filter).
    Found by dbt's dispatch: the root project's postgres__ implementation wins. -#}

{% macro postgres__test_unique(model, column_name) %}

select
    {{ column_name }} as unique_field,
    count(*) as n_records

from {{ model }}
where
    {{ column_name }} is not null
    and not {{ enforced_by_catalog('unique', model, column_name) }}
group by {{ column_name }}
having count(*) > 1

{% endmacro %}


{% macro postgres__test_not_null(model, column_name) %}

{% set column_list = '*' if should_store_failures() else column_name %}

select {{ column_list }}
from {{ model }}
where
    {{ column_name }} is null
    and not {{ enforced_by_catalog('not_null', model, column_name) }}

{% endmacro %}


{#- A SQL boolean: does the catalog enforce `kind` (unique or not_null) on the column of
    this relation? `false` when the test does not read a plain relation. -#}
{% macro enforced_by_catalog(kind, model, column_name) -%}
    {%- if model is string or not model.identifier or model.is_cte -%}
        false
    {%- else -%}
        {%- set column = column_name[1:-1] if column_name.startswith('"') else column_name | lower -%}
        {%- set relation = (adapter.quote(model.schema) ~ '.' ~ adapter.quote(model.identifier)) | replace("'", "''") -%}
        {%- set column = column | replace("'", "''") -%}
        {%- if kind == 'unique' -%}
            exists (
                select 1
                from pg_catalog.pg_index as enforced_index
                inner join pg_catalog.pg_attribute as enforced_column
                    on
                        enforced_index.indrelid = enforced_column.attrelid
                        and enforced_index.indkey[0] = enforced_column.attnum
                where
                    enforced_index.indrelid = to_regclass('{{ relation }}')
                    and enforced_index.indisunique
                    and enforced_index.indisvalid
                    and enforced_index.indnkeyatts = 1
                    and enforced_index.indpred is null
                    and enforced_index.indexprs is null
                    and enforced_column.attname = '{{ column }}'
            )
        {%- elif kind == 'not_null' -%}
            exists (
                select 1
                from pg_catalog.pg_attribute as enforced_column
                where
                    enforced_column.attrelid = to_regclass('{{ relation }}')
                    and enforced_column.attname = '{{ column }}'
                    and enforced_column.attnotnull
                    and not enforced_column.attisdropped
            )
        {%- else -%}
            {{ exceptions.raise_compiler_error("enforced_by_catalog: kind must be unique or not_null, not " ~ kind) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
