-- Grain: one row per cost-bearing resource (active VPS instance, or SMTP IP with status
-- active, warmed or warming) and validity interval [valid_from_date, valid_to_date) of its
-- modeled monthly cost: the resource-level cost model the daily history, the marts and the
-- reconciliations are built from, published for analysts. "Cost of this VPS on 2026-10-31
-- and why":
--   where resource_ref = '<hostname>' and valid_from_date <= '2026-10-31'
--     and '2026-10-31' < valid_to_date
{{ config(grants=mart_grants()) }}

with

resource_costs as (
    select * from {{ ref('int_resource_cost_intervals') }}
),

final as (
    select
        resource_type,
        resource_id,
        resource_ref,
        valid_from_date,
        valid_to_date,
        tenant_id,
        vps_instance_id,
        has_vps,
        monthly_cost,
        cost_source,
        record_monthly_cost,
        reference_monthly_cost,
        reference_effective_date,
        cost_basis
    from resource_costs
)

select * from final
