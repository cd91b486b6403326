{#- Margin test: the health status follows its thresholds: Excellent when revenue > 2x cost,
    Good > 1.5x, Monitor > 1x, else 'Critical Action Required'. -#}
{% test health_status_matches_thresholds(model, column_name, revenue, cost) %}
    select *
    from {{ model }}
    where
        {{ column_name }} is null
        or {{ column_name }} <> case
            when {{ revenue }} > {{ cost }} * 2 then 'Excellent'
            when {{ revenue }} > {{ cost }} * 1.5 then 'Good'
            when {{ revenue }} > {{ cost }} then 'Monitor'
            else 'Critical Action Required'
        end
{% endtest %}
