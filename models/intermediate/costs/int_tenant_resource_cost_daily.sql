-- Grain: one row per tenant owning at least one cost-bearing resource (active VPS, or SMTP IP
-- in active, warmed or warming on one of its VPS), and day of this run's window
-- (history_start_date() to the as-of date). Each resource's cost interval is expanded to the
-- days of the window it covers and summed per tenant before any join to subscriptions, so
-- a VPS is counted once however many IPs, subscriptions or billing rows its tenant has.
{{ config(tags=['daily']) }}

with

resource_costs as (
    select * from {{ ref('int_resource_cost_intervals') }}
),

resource_days as (
    select
        resource_costs.tenant_id,
        cast(run_days.economics_day as date) as economics_date,
        resource_costs.resource_type,
        resource_costs.monthly_cost
    from resource_costs
    cross join
        lateral
        {{ window_days('resource_costs.valid_from_date', 'resource_costs.valid_to_date') }}
            as run_days (economics_day)
    where resource_costs.tenant_id is not null
),

final as (
    select
        tenant_id,
        economics_date,
        count(*) filter (where resource_type = 'vps') as active_vps_count,
        coalesce(sum(monthly_cost) filter (where resource_type = 'vps'), 0.00)
            as infrastructure_cost,
        count(*) filter (where resource_type = 'smtp_ip') as billable_ip_count,
        coalesce(sum(monthly_cost) filter (where resource_type = 'smtp_ip'), 0.00)
            as email_service_cost
    from resource_days
    group by tenant_id, economics_date
)

select * from final
