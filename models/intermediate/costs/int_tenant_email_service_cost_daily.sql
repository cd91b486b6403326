-- Grain: one row per tenant with at least one cost-bearing SMTP IP on one of its VPS, and
-- day of this run's window (history_start_date() to the as-of date): each IP's cost
-- interval expanded to the days it covers, summed per tenant.
{{ config(tags=['daily']) }}

with

ip_costs as (
    select * from {{ ref('int_smtp_ip_cost_intervals') }}
),

ip_days as (
    select
        ip_costs.tenant_id,
        cast(run_days.economics_day as date) as economics_date,
        ip_costs.monthly_cost
    from ip_costs
    cross join
        lateral
        {{ window_days('ip_costs.valid_from_date', 'ip_costs.valid_to_date') }}
            as run_days (economics_day)
    where ip_costs.tenant_id is not null
),

final as (
    select
        tenant_id,
        economics_date,
        count(*) as billable_ip_count,
        sum(monthly_cost) as email_service_cost
    from ip_days
    group by tenant_id, economics_date
)

select * from final
