{#- The versions of a snapshot with the days each is valid for: [valid_from_date,
    valid_to_date). A version is valid from the as-of date of the run that captured it
    (captured_for_date); the first version of a key from the beginning of time, so a backfill
    before the first capture uses the oldest known value. A day captured several times (a
    refresh, a fix of the source, a second refresh) has one version: the last one captured,
    which the last publish of that day used. -#}
{% macro snapshot_validity(snapshot, key_column, value_columns) -%}
    with

    captured as (
        select
            {{ key_column }},
            {%- for column in value_columns %}
            {{ column }},
            {%- endfor %}
            captured_for_date,
            dbt_valid_from,
            row_number() over (
                partition by {{ key_column }}, captured_for_date order by dbt_valid_from desc
            ) as nth_of_day
        from {{ snapshot }}
    ),

    last_of_day as (
        select
            {{ key_column }},
            {%- for column in value_columns %}
            {{ column }},
            {%- endfor %}
            captured_for_date,
            dbt_valid_from
        from captured
        where nth_of_day = 1
    ),

    ordered as (
        select
            {{ key_column }},
            {%- for column in value_columns %}
            {{ column }},
            {%- endfor %}
            captured_for_date,
            row_number() over (
                partition by {{ key_column }} order by captured_for_date asc, dbt_valid_from asc
            ) as version_number,
            lead(captured_for_date) over (
                partition by {{ key_column }} order by captured_for_date asc, dbt_valid_from asc
            ) as next_captured_for_date
        from last_of_day
    )

    select
        {{ key_column }},
        version_number,
        {%- for column in value_columns %}
        {{ column }},
        {%- endfor %}
        case
            when version_number = 1 then cast('-infinity' as date) else captured_for_date
        end as valid_from_date,
        coalesce(next_captured_for_date, cast('infinity' as date)) as valid_to_date
    from ordered
{%- endmacro %}
