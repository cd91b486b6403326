{#- Margin test: `column_name` = round(numerator / denominator, precision), or 0 when the
    denominator is 0; and never negative when `non_negative` (the default). -#}
{% test ratio_matches_inputs(model, column_name, numerator, denominator, precision=2, non_negative=true) %}
    select *
    from {{ model }}
    where
        {{ column_name }} is null
        or {{ column_name }} <> case
            when {{ denominator }} > 0 then round({{ numerator }} / {{ denominator }}, {{ precision }})
            else 0
        end
        {%- if non_negative %}
        or {{ column_name }} < 0
        {%- endif %}
{% endtest %}
