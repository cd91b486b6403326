{#- Overrides dbt's built-in collect_freshness (for PostgreSQL, through dispatch):
    `dbt source freshness` measured at the as-of moment: the end of the as-of
    day (midnight UTC after it), or now when that is earlier. On a daily run (as-of today)
    that is now, dbt's own rule; a run for a past day judges the feeds as they were that
    day, so `pmcost refresh --as-of <last month>` is not stopped because today's load is
    late. An empty table reads as loaded at 1970-01-01 (so stale by any threshold, and named
    as having no rows by `pmcost refresh`) rather than dbt's null-value runtime error, so a
    warn-only source stays a warning. Overrides dbt's default__collect_freshness for this
    adapter through dispatch. -#}
{% macro postgres__collect_freshness(source, loaded_at_field, filter) %}
    {% call statement('collect_freshness', fetch_result=True, auto_begin=False) -%}
        select
            coalesce(
                max({{ loaded_at_field }}), cast('1970-01-01 00:00:00+00' as timestamptz)
            ) as max_loaded_at,
            least(
                {{ current_timestamp() }},
                cast({{ as_of_date() }} + 1 as timestamp) at time zone 'UTC'
            ) as snapshotted_at
        from {{ source }}
        {% if filter %}
            where {{ filter }}
        {% endif %}
    {%- endcall %}
    {{ return(load_result('collect_freshness')) }}
{% endmacro %}
