-- Grain: one row per tenant that owns at least one active VPS instance.
-- Aggregated before any join to subscriptions, so a VPS is counted once however many IPs,
-- subscriptions or billing rows its tenant has.
with

vps_costs as (
    select * from {{ ref('int_vps_monthly_cost') }}
),

final as (
    select
        tenant_id,
        count(*) as active_vps_count,
        sum(monthly_cost) as infrastructure_cost
    from vps_costs
    where tenant_id is not null
    group by tenant_id
)

select * from final
