{#- First day an incremental run of the daily models (re)computes, as a SQL date literal:
    var history_start (YYYY-MM-DD; or $PMCOST_HISTORY_START, as pmcost passes it) for a
    backfill, else, outside production, the first day of a build that starts the target's
    own history (development_history_start), else the as-of date minus var
    daily_lookback_days, so late billing rows and payments of the last few days are picked
    up. -#}
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
    {%- set first_build = development_history_start(as_of) -%}
    {%- if first_build is not none -%}
        {{ return(first_build) }}
    {%- endif -%}
    {%- set lookback = modules.datetime.timedelta(days=var('daily_lookback_days') | int) -%}
    {{ return((as_of - lookback).isoformat()) }}
{%- endmacro %}


{#- Outside production (the dev and ci targets), the first day of a build that starts the
    target's own daily history (no fct_tenant_economics_daily in its schema yet) or rebuilds
    it (--full-refresh): var dev_history_days before the as-of date, or the first day the
    history already holds when that is earlier. So an analyst's first `dbt build` has weeks
    of history, as production has, for weekly metrics and the anomaly baseline. None
    otherwise: a later build recomputes the lookback, as production's daily run does, and
    production's history is pmcost's to carry and guard (macros/publication.sql). A unit
    test's window is its own vars'. -#}
{% macro development_history_start(as_of) -%}
    {%- if not execute or is_production()
            or (model is mapping and model.get('resource_type') == 'unit_test') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set first = as_of - modules.datetime.timedelta(days=var('dev_history_days') | int) -%}
    {%- set node = graph.nodes.get('model.' ~ project_name ~ '.fct_tenant_economics_daily') -%}
    {%- set history = none if node is none else adapter.get_relation(
            database=node.database, schema=node.schema, identifier=node.alias) -%}
    {%- if history is none -%}
        {{ return(first.isoformat()) }}
    {%- endif -%}
    {%- if not flags.FULL_REFRESH -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set held = run_query('select min(economics_date) from ' ~ history).columns[0].values()[0] -%}
    {{ return((first if held is none or held > first else held).isoformat()) }}
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
