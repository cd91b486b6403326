-- Grain: one row per active VPS instance (only active instances cost money).
-- Monthly cost: Finance's record value when above 0, else the price list normalised to a
-- month; `unpriced` (NULL cost) when neither exists, which a test turns into an error.
with

vps_instances as (
    select * from {{ ref('stg_app__vps_instances') }}
),

monthly_prices as (
    select * from {{ ref('int_vps_price_list_monthly') }}
),

active_instances as (
    select
        vps_instance_id,
        tenant_id,
        plan_code,
        billing_cycle,
        record_monthly_cost
    from vps_instances
    where vps_status = 'active'
),

final as (
    select
        active_instances.vps_instance_id,
        active_instances.tenant_id,
        active_instances.plan_code,
        active_instances.billing_cycle,
        active_instances.record_monthly_cost,
        monthly_prices.monthly_price_usd as price_list_monthly_cost,
        case
            when active_instances.record_monthly_cost > 0
                then active_instances.record_monthly_cost
            else monthly_prices.monthly_price_usd
        end as monthly_cost,
        case
            when active_instances.record_monthly_cost > 0 then 'record'
            when monthly_prices.monthly_price_usd is not null then 'price_list'
            else 'unpriced'
        end as cost_source
    from active_instances
    left join monthly_prices
        on
            active_instances.plan_code = monthly_prices.plan_code
            and active_instances.billing_cycle = monthly_prices.billing_cycle
)

select * from final
