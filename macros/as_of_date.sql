{#- The day the marts describe, as a SQL date literal.
    Set with --vars '{as_of_date: "2026-11-01"}' (pmcost refresh --as-of 2026-11-01);
    unset, it is the run day. Models never call current_date, so a backfill is reproducible. -#}
{% macro as_of_date() -%}
    cast('{{ as_of_date_value() }}' as date)
{%- endmacro %}


{#- The as-of date as YYYY-MM-DD text. A malformed value, or a day after tomorrow (no data
    can describe it, and its rows would stay in the history), stops the run with the fix. -#}
{% macro as_of_date_value() -%}
    {%- set raw = run_setting('as_of_date', 'PMCOST_AS_OF_DATE') -%}
    {%- set today = modules.datetime.date.today() -%}
    {%- if raw == '' -%}
        {{ return(today.isoformat()) }}
    {%- endif -%}
    {%- set value = date_var_value('as_of_date', raw, "pmcost refresh --as-of 2026-11-01 or --vars '{as_of_date: \"2026-11-01\"}'") -%}
    {%- set tomorrow = (today + modules.datetime.timedelta(days=1)).isoformat() -%}
    {%- if value > tomorrow -%}
        {{ exceptions.raise_compiler_error(
            "var as_of_date = '" ~ value ~ "' is after tomorrow (" ~ tomorrow ~ "): "
            ~ "no data describes it; use today or an earlier day"
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#- A day-to-day run setting as text: dbt var `name` when given (even as ''), else the
    environment variable `env_name`, else ''. pmcost passes the as-of date and the history start in the
    environment, and the macro reads it only while executing, never while parsing: a new
    day then changes neither dbt's vars nor a parse-time env var, so partial parsing is kept
    from one daily refresh to the next. -#}
{% macro run_setting(name, env_name) -%}
    {%- set raw = var(name, none) -%}
    {%- if raw is none -%}
        {#- a var set to '' (as unit tests do) means unset, and does not read the environment -#}
        {%- set raw = env_var(env_name, '') if execute else '' -%}
    {%- endif -%}
    {{ return((raw or '') | string | trim) }}
{%- endmacro %}


{#- A date setting's value as YYYY-MM-DD text; a malformed value stops the run naming the
    var, the format and an example of use. -#}
{% macro date_var_value(name, value, example) -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " = '" ~ value ~ "' is not a date: use YYYY-MM-DD, e.g. " ~ example
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}
