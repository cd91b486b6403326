{#- First day an incremental run of the daily models (re)computes: var history_start
    (YYYY-MM-DD) for a backfill, else the as-of date minus var daily_lookback_days, so late
    billing rows and payments of the last few days are picked up. -#}
{% macro history_start_date() -%}
    {%- set raw = var('history_start', none) -%}
    {%- if raw is none or (raw | string | trim) == '' -%}
        ({{ as_of_date() }} - {{ var('daily_lookback_days') | int }})
    {%- else -%}
        cast('{{ date_var_value('history_start', "--vars '{history_start: \"2026-10-01\", as_of_date: \"2026-11-01\"}'") }}' as date)
    {%- endif -%}
{%- endmacro %}
