-- Grain: one row per active VPS instance and validity interval [valid_from_date,
-- valid_to_date) of its price list price (only active instances cost money; statuses and
-- record values have no history, so they hold for all time).
-- Monthly cost: Finance's record value when above 0, else the price list price in force,
-- normalised to a month; `unpriced` (NULL cost) when neither exists, which a test turns
-- into an error for the days a run computes.
with

vps_instances as (
    select * from {{ ref('stg_app__vps_instances') }}
),

price_intervals as (
    select * from {{ ref('int_vps_price_intervals') }}
),

active_instances as (
    select
        vps_instance_id,
        tenant_id,
        hostname,
        plan_code,
        billing_cycle,
        record_monthly_cost
    from vps_instances
    where vps_status = 'active'
),

final as (
    select
        active_instances.vps_instance_id,
        coalesce(price_intervals.valid_from_date, cast('-infinity' as date)) as valid_from_date,
        coalesce(price_intervals.valid_to_date, cast('infinity' as date)) as valid_to_date,
        active_instances.tenant_id,
        active_instances.hostname,
        active_instances.plan_code,
        active_instances.billing_cycle,
        active_instances.record_monthly_cost,
        price_intervals.monthly_price_usd as price_list_monthly_cost,
        price_intervals.price_effective_date,
        case
            when active_instances.record_monthly_cost > 0
                then active_instances.record_monthly_cost
            else price_intervals.monthly_price_usd
        end as monthly_cost,
        case
            when active_instances.record_monthly_cost > 0 then 'record'
            when price_intervals.monthly_price_usd is not null then 'price_list'
            else 'unpriced'
        end as cost_source
    from active_instances
    -- a plan code or cycle missing from the price list keeps one all-time interval, unpriced
    left join price_intervals
        on
            active_instances.plan_code = price_intervals.plan_code
            and active_instances.billing_cycle = price_intervals.billing_cycle
)

select * from final
