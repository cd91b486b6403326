{#- A data test's `where` config, completed when the test runs: `__history_start__` stands
    for this run's first day, history_start_date(). The YAML cannot call the macro itself: a
    test's config is rendered when dbt parses, and a new day must not make dbt parse again
    (the as-of date reaches the macros at run time). Otherwise dbt's own behaviour: the
    tested relation, filtered by `where` when one is set.

    The daily fact's tests use it to read only the days this run wrote. Older days are as
    the run that wrote them left them (an incremental run deletes and inserts only its own
    days), and that run tested them; testing them again each day made the tests' time grow
    with the length of the history (46 s of the build at 100,000 tenants and 110 days).
    The usage rows' tests (stg_app__billing_analytics) read, the same way, the rows this
    run's email windows read. -#}
{% macro postgres__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set where = where | replace('__history_start__', history_start_date()) -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}
