{#- Fails for every row where `expression` is not true (false or NULL).
    The failing rows are returned whole, so `dbt test --store-failures` shows them. -#}
{% test expression_is_true(model, expression, column_name=none) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)
{% endtest %}
