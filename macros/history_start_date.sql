{#- First day an incremental run of the daily models (re)computes: var history_start
    (YYYY-MM-DD; or $PMCOST_HISTORY_START, as pmcost passes it) for a backfill, else the
    as-of date minus var daily_lookback_days, so late billing rows and payments of the last
    few days are picked up. -#}
{% macro history_start_date() -%}
    {%- set raw = run_setting('history_start', 'PMCOST_HISTORY_START') -%}
    {%- if raw == '' -%}
        ({{ as_of_date() }} - {{ var('daily_lookback_days') | int }})
    {%- else -%}
        cast('{{ date_var_value('history_start', raw, "--vars '{history_start: \"2026-10-01\", as_of_date: \"2026-11-01\"}'") }}' as date)
    {%- endif -%}
{%- endmacro %}
