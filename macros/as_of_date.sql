{#- The day the marts describe, as a SQL date literal.
    Set with --vars '{as_of_date: "2026-11-01"}' (pmcost refresh --as-of 2026-11-01);
    unset, it is the run day. Models never call current_date, so a backfill is reproducible. -#}
{% macro as_of_date() -%}
    {%- set raw = var('as_of_date', none) -%}
    {%- if raw is none or (raw | string | trim) == '' -%}
        {%- set value = modules.datetime.date.today().isoformat() -%}
    {%- else -%}
        {%- set value = raw | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$', value) -%}
            {{ exceptions.raise_compiler_error(
                "var as_of_date = '" ~ value ~ "' is not a date: use YYYY-MM-DD, "
                ~ "e.g. pmcost refresh --as-of 2026-11-01 or --vars '{as_of_date: \"2026-11-01\"}'"
            ) }}
        {%- endif -%}
    {%- endif -%}
    cast('{{ value }}' as date)
{%- endmacro %}
