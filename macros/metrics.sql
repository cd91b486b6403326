{#- The metric formulas, defined once for every model that computes them (the marts and the
    daily fact). The margin rules (the marts' CHECK constraints, in their YAML) recompute
    them independently, on purpose. -#}

{#- numerator / denominator rounded to `places`; 0 when the denominator is 0 (or NULL). -#}
{% macro safe_ratio(numerator, denominator, places=2) -%}
    case when {{ denominator }} > 0 then round({{ numerator }} / {{ denominator }}, {{ places }}) else 0 end
{%- endmacro %}

{#- (revenue - cost) / revenue x 100, 2 dp, clamped to 0..100; 0 when revenue is 0. -#}
{% macro cost_efficiency_score(revenue, cost) -%}
    case
        when {{ revenue }} > 0
            then least(100, greatest(0, round(({{ revenue }} - {{ cost }}) / {{ revenue }} * 100, 2)))
        else 0
    end
{%- endmacro %}

{#- Excellent when revenue > 2x cost, Good > 1.5x, Monitor > 1x, else Critical Action Required. -#}
{% macro business_health_status(revenue, cost) -%}
    case
        when {{ revenue }} > {{ cost }} * 2 then 'Excellent'
        when {{ revenue }} > {{ cost }} * 1.5 then 'Good'
        when {{ revenue }} > {{ cost }} then 'Monitor'
        else 'Critical Action Required'
    end
{%- endmacro %}


{#- The rank of a health status (business_health_status), best highest: 4 Excellent, 3 Good,
    2 Monitor, 1 Critical Action Required; NULL for anything else. -#}
{% macro status_order(status) -%}
    case {{ status }}
        when 'Excellent' then 4
        when 'Good' then 3
        when 'Monitor' then 2
        when 'Critical Action Required' then 1
    end
{%- endmacro %}
