{#- SCD2 history of Finance's VPS price list seed: catches a row edited in place (a new
    effective_date row is the right way to change a price; this keeps the past safe anyway). -#}
{% snapshot snap_vps_price_list %}
    {{ config(
        unique_key='price_key',
        strategy='check',
        check_cols=['cycle_price_usd'],
    ) }}

select
    lower(trim(plan_code)) || '|' || lower(trim(billing_cycle)) || '|' || effective_date
        as price_key,
    lower(trim(plan_code)) as plan_code,
    lower(trim(billing_cycle)) as billing_cycle,
    effective_date,
    cycle_price_usd,
    {{ as_of_date() }} as captured_for_date
from {{ ref('vps_price_list') }}
{% endsnapshot %}
