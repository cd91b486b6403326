{#- The day the marts describe, as a SQL date literal.
    Set with --vars '{as_of_date: "2026-11-01"}' (pmcost refresh --as-of 2026-11-01);
    unset, it is the run day. Models never call current_date, so a backfill is reproducible. -#}
{% macro as_of_date() -%}
    cast('{{ as_of_date_value() }}' as date)
{%- endmacro %}


{#- The as-of date as YYYY-MM-DD text. A malformed value, or a day after tomorrow (no data
    can describe it, and its rows would stay in the history), stops the run with the fix. -#}
{% macro as_of_date_value() -%}
    {%- set raw = var('as_of_date', none) -%}
    {%- set today = modules.datetime.date.today() -%}
    {%- if raw is none or (raw | string | trim) == '' -%}
        {{ return(today.isoformat()) }}
    {%- endif -%}
    {%- set value = date_var_value('as_of_date', "pmcost refresh --as-of 2026-11-01 or --vars '{as_of_date: \"2026-11-01\"}'") -%}
    {%- set tomorrow = (today + modules.datetime.timedelta(days=1)).isoformat() -%}
    {%- if value > tomorrow -%}
        {{ exceptions.raise_compiler_error(
            "var as_of_date = '" ~ value ~ "' is after tomorrow (" ~ tomorrow ~ "): "
            ~ "no data describes it; use today or an earlier day"
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#- A date var's value as YYYY-MM-DD text; a malformed one stops the run naming the var, the
    format and an example of use. -#}
{% macro date_var_value(name, example) -%}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " = '" ~ value ~ "' is not a date: use YYYY-MM-DD, e.g. " ~ example
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}
