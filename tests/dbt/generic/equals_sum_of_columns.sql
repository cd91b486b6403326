{#- Margin test: `column_name` equals the sum of `addends`, to the cent (NULL counts as 0
    nowhere: a NULL total or part fails). -#}
{% test equals_sum_of_columns(model, column_name, addends) %}
    select *
    from {{ model }}
    where
        {{ column_name }} is null
        or {{ column_name }} <> ({{ addends | join(' + ') }})
        or ({{ addends | join(' + ') }}) is null
{% endtest %}
