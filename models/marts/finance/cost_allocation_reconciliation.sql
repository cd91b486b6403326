-- Grain: one row per resource type, cost source and allocation status, as of var as_of_date
-- (the resource cost intervals that hold on that day).
-- Every modeled monthly cost lands in exactly one row: allocated to a tenant that appears in
-- the marts, or unallocated (shared pool, IP without a VPS, tenant without an active
-- subscription). Allocated + unallocated = total modeled cost, to the cent. Shared database
-- (NileDB) cost is Finance-level overhead and is not modeled here.
-- No tenant rows: the application service (tenant-scoped) sees none of it.
{{ config(grants=mart_grants(), meta={'tenant_scoped': false}) }}
with

resource_costs as (
    select * from {{ ref('int_resource_cost_intervals') }}
),

subscriptions as (
    select * from {{ ref('int_tenant_subscriptions_daily') }}
),

resources as (
    select
        resource_type,
        tenant_id,
        has_vps as has_parent,
        cost_source,
        monthly_cost
    from resource_costs
    where {{ interval_holds_on() }}
),

active_tenants as (
    select tenant_id
    from subscriptions
    where economics_date = {{ as_of_date() }}
),

classified as (
    select
        resources.resource_type,
        resources.cost_source,
        resources.monthly_cost,
        case
            when active_tenants.tenant_id is not null then 'allocated'
            when not resources.has_parent then 'unallocated_ip_without_vps'
            when resources.tenant_id is null then 'unallocated_shared_pool'
            else 'unallocated_tenant_without_active_subscription'
        end as allocation_status
    from resources
    left join active_tenants
        on resources.tenant_id = active_tenants.tenant_id
),

final as (
    select
        resource_type,
        cost_source,
        allocation_status,
        (allocation_status = 'allocated') as is_allocated,
        count(*) as resource_count,
        cast(coalesce(sum(monthly_cost), 0) as numeric(14, 2)) as monthly_cost,
        {{ as_of_date() }} as as_of_date
    from classified
    group by resource_type, cost_source, allocation_status
)

select * from final
