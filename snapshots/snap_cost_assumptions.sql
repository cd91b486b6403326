{#- SCD2 history of Finance's cost assumptions seed (the dedicated-IP constant). -#}
{% snapshot snap_cost_assumptions %}
    {{ config(
        unique_key='effective_date',
        strategy='check',
        check_cols=['dedicated_ip_monthly_cost_usd'],
    ) }}

select
    effective_date,
    dedicated_ip_monthly_cost_usd,
    {{ as_of_date() }} as captured_for_date
from {{ ref('cost_assumptions') }}
{% endsnapshot %}
