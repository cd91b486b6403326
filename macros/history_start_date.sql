{#- First day an incremental run of the daily models (re)computes, as a SQL date literal:
    var history_start (YYYY-MM-DD; or $PMCOST_HISTORY_START, as pmcost passes it) for a
    backfill, else the as-of date minus var daily_lookback_days, so late billing rows and
    payments of the last few days are picked up. -#}
{% macro history_start_date() -%}
    cast('{{ history_start_value() }}' as date)
{%- endmacro %}


{#- history_start_date() as YYYY-MM-DD text; a malformed var stops the run with the fix. -#}
{% macro history_start_value() -%}
    {%- set raw = run_setting('history_start', 'PMCOST_HISTORY_START') -%}
    {%- if raw != '' -%}
        {{ return(date_var_value('history_start', raw, "--vars '{history_start: \"2026-10-01\", as_of_date: \"2026-11-01\"}'")) }}
    {%- endif -%}
    {%- set as_of = modules.datetime.date.fromisoformat(as_of_date_value()) -%}
    {%- set lookback = modules.datetime.timedelta(days=var('daily_lookback_days') | int) -%}
    {{ return((as_of - lookback).isoformat()) }}
{%- endmacro %}


{#- The days of this run's window, history_start_date() to the as-of date, as a list of
    YYYY-MM-DD texts (empty when the history start is after the as-of date), for a model
    that writes one expression per day. -#}
{% macro run_days() -%}
    {%- set first = modules.datetime.date.fromisoformat(history_start_value()) -%}
    {%- set last = modules.datetime.date.fromisoformat(as_of_date_value()) -%}
    {%- set days = [] -%}
    {%- for offset in range((last - first).days + 1) -%}
        {%- do days.append((first + modules.datetime.timedelta(days=offset)).isoformat()) -%}
    {%- endfor -%}
    {{ return(days) }}
{%- endmacro %}
