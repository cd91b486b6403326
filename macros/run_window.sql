{#- The rows a run's tests read, for a data test given the named argument `run_window`:
    `{column: <a date column>, days_before: <n, default 0>}` keeps the rows whose column is
    on or after this run's first day (history_start_date()) minus `days_before`; no argument
    keeps every row. The value is read when the test runs, not when dbt parses, so a new day
    does not make dbt parse again (the as-of date reaches the macros at run time).

    The daily fact's tests use it to read only the days this run wrote. Older days are as
    the run that wrote them left them (an incremental run deletes and inserts only its own
    days), and that run tested them; testing them again each day made the tests' time grow
    with the length of the history (46 s of the build at 100,000 tenants and 110 days).
    The usage rows' subscription test (stg_app__billing_analytics) reads, the same way, the
    rows this run's 30-day email windows read; their other rules are tested on
    int_billing_analytics_flagged_rows, which keeps the same rows. -#}
{% macro run_window_condition(run_window) -%}
    {%- if run_window is none -%}
        true
    {%- else -%}
        {%- if run_window is not mapping or 'column' not in run_window -%}
            {{ exceptions.raise_compiler_error(
                "run_window must be {column: <date column>, days_before: <days>}, not "
                ~ run_window
            ) }}
        {%- endif -%}
        {%- set days_before = run_window.get('days_before', 0) | int -%}
        {{ run_window['column'] }} >= {{ history_start_date() }} - {{ days_before }}
    {%- endif -%}
{%- endmacro %}
