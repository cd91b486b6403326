{#- Fails for every row where `column_name` is below zero (NULLs are left to not_null). With
    `run_window` (see run_window_condition), only the rows this run reads. -#}
{% test not_negative(model, column_name, run_window=none) %}
    select *
    from {{ model }}
    where {{ column_name }} < 0 and {{ run_window_condition(run_window) }}
{% endtest %}
