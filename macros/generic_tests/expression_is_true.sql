{#- Fails for every row where `expression` is not true (false or NULL). With `run_window`
    (see run_window_condition), only the rows this run reads.
    The failing rows are returned whole, so `dbt test --store-failures` shows them. -#}
{% test expression_is_true(model, expression, column_name=none, run_window=none) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false) and {{ run_window_condition(run_window) }}
{% endtest %}
