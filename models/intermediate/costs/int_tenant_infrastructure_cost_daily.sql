-- Grain: one row per tenant owning at least one active VPS, and day of this run's window
-- (history_start_date() to the as-of date). Each VPS's cost interval is expanded to the days
-- of the window it covers and summed per tenant before any join to subscriptions, so a VPS
-- is counted once however many IPs, subscriptions or billing rows its tenant has.
{{ config(tags=['daily']) }}

with

vps_costs as (
    select * from {{ ref('int_vps_cost_intervals') }}
),

vps_days as (
    select
        vps_costs.tenant_id,
        cast(run_days.economics_day as date) as economics_date,
        vps_costs.monthly_cost
    from vps_costs
    cross join
        lateral
        {{ window_days('vps_costs.valid_from_date', 'vps_costs.valid_to_date') }}
            as run_days (economics_day)
    where vps_costs.tenant_id is not null
),

final as (
    select
        tenant_id,
        economics_date,
        count(*) as active_vps_count,
        sum(monthly_cost) as infrastructure_cost
    from vps_days
    group by tenant_id, economics_date
)

select * from final
