{#- Fails for every row where `column_name` is NULL among the rows this run reads (see
    run_window_condition): dbt's not_null for a table whose tests read only the run's rows. -#}
{% test not_null_in_run_window(model, column_name, run_window) %}
    select *
    from {{ model }}
    where {{ column_name }} is null and {{ run_window_condition(run_window) }}
{% endtest %}
