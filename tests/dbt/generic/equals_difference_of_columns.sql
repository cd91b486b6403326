{#- Margin test: `column_name` = `minuend` - `subtrahend`, exactly (e.g. profit = revenue - cost). -#}
{% test equals_difference_of_columns(model, column_name, minuend, subtrahend) %}
    select *
    from {{ model }}
    where
        {{ column_name }} is null
        or {{ column_name }} <> {{ minuend }} - {{ subtrahend }}
        or {{ minuend }} - {{ subtrahend }} is null
{% endtest %}
