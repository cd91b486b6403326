{#- Margin test: the cost efficiency score is (revenue - cost) / revenue * 100, rounded to
    2 dp and clamped to 0..100; 0 when revenue is 0. Also checks the bounds on their own. -#}
{% test efficiency_score_matches_inputs(model, column_name, revenue, cost) %}
    select *
    from {{ model }}
    where
        {{ column_name }} is null
        or {{ column_name }} < 0
        or {{ column_name }} > 100
        or {{ column_name }} <> case
            when {{ revenue }} > 0
                then least(100, greatest(0, round(({{ revenue }} - {{ cost }}) / {{ revenue }} * 100, 2)))
            else 0
        end
{% endtest %}
