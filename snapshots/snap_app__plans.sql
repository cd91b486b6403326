{#- SCD2 history of the plans table (list prices change). Each version records the as-of
    date of the run that captured it, so a past day is computed with the price that held. -#}
{% snapshot snap_app__plans %}
    {{ config(
        unique_key='plan_id',
        strategy='check',
        check_cols=['plan_name', 'price_monthly', 'currency_code'],
    ) }}

select
    id as plan_id,
    nullif(trim(name), '') as plan_name,
    cast(price_monthly as numeric(12, 2)) as price_monthly,
    upper(trim(currency)) as currency_code,
    {{ as_of_date() }} as captured_for_date
from {{ source('app', 'plans') }}
{% endsnapshot %}
