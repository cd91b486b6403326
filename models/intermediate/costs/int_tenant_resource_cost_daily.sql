-- Grain: one row per tenant owning at least one cost-bearing resource (active VPS, or SMTP IP
-- in active, warmed or warming on one of its VPS), and day of this run's window
-- (history_start_date() to the as-of date). The resources' cost intervals are clipped to the
-- window and summed per tenant and clipped interval first (a tenant's resources mostly share
-- their interval bounds), then expanded to the days they cover and summed per tenant and day,
-- all before any join to subscriptions: a VPS is counted once however many IPs,
-- subscriptions or billing rows its tenant has.
-- Both sums group sorted rows, not hash tables (the pre-hook, for this statement's transaction
-- only): the planner cannot estimate the groups after the join to the run's days (it
-- expects 800 where a daily run has one per tenant and day, 361,300 at 100,000 tenants) and
-- picks a hash table of numeric sums that spills to disk, 1.2-1.3 s against 0.7 s for the
-- sorts, which read the per-tenant rows in tenant order already.
-- JIT is off for the same transaction: the estimate is far above the work (without_jit).
{{ config(
    tags=['daily'],
    pre_hook=["set local enable_hashagg = off", "{{ without_jit() }}"],
) }}

with

resource_costs as (
    select * from {{ ref('int_resource_cost_intervals') }}
),

run_days as (
    select cast(run_day as date) as economics_date
    from
        generate_series({{ history_start_date() }}, {{ as_of_date() }}, interval '1 day')
            as run_days (run_day)
),

tenant_intervals as (
    select
        tenant_id,
        greatest(valid_from_date, {{ history_start_date() }}) as first_date,
        least(valid_to_date, {{ as_of_date() }} + 1) as end_date,
        count(*) filter (where resource_type = 'vps') as vps_count,
        sum(monthly_cost) filter (where resource_type = 'vps') as vps_cost,
        count(*) filter (where resource_type = 'smtp_ip') as ip_count,
        sum(monthly_cost) filter (where resource_type = 'smtp_ip') as ip_cost
    from resource_costs
    where tenant_id is not null and {{ overlaps_run_window() }}
    group by tenant_id, first_date, end_date
),

final as (
    select
        tenant_intervals.tenant_id,
        run_days.economics_date,
        cast(sum(tenant_intervals.vps_count) as bigint) as active_vps_count,
        coalesce(sum(tenant_intervals.vps_cost), 0.00) as infrastructure_cost,
        cast(sum(tenant_intervals.ip_count) as bigint) as billable_ip_count,
        coalesce(sum(tenant_intervals.ip_cost), 0.00) as email_service_cost
    from tenant_intervals
    inner join run_days
        on
            tenant_intervals.first_date <= run_days.economics_date
            and tenant_intervals.end_date > run_days.economics_date
    group by tenant_intervals.tenant_id, run_days.economics_date
)

select * from final
