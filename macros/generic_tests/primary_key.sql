{#- The primary-key test: fails for every key that is NULL in any of its columns or appears
    more than once. One scan and one dbt node for what `unique` plus a `not_null` per key
    column check in one each. On a column: `- primary_key`; on a model keyed on several
    columns: `- primary_key: {arguments: {columns: [a, b]}}`. With `run_window` (see
    run_window_condition), only the rows this run wrote. -#}
{% test primary_key(model, column_name=none, columns=none, run_window=none) %}
    {%- set key = columns if columns else [column_name] -%}
    select
        {{ key | join(', ') }},
        count(*) as occurrences
    from {{ model }}
    where {{ run_window_condition(run_window) }}
    group by {{ key | join(', ') }}
    having
        count(*) > 1
        {%- for column in key %}
            or {{ column }} is null
        {%- endfor %}
{% endtest %}
