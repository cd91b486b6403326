-- Grain: one row per cost-bearing resource (active VPS instance, or SMTP IP with status
-- active, warmed or warming) and validity interval [valid_from_date, valid_to_date) of its
-- modeled monthly cost, with the inputs that explain it: the one resource-level cost model.
-- The tenant-day costs, resource_cost_intervals (for analysts), the allocation
-- reconciliation and the invoice reconciliation all read it. resource_key is how invoices
-- name the resource (macro resource_key).
{{ config(materialized='ephemeral') }}

with

vps_costs as (
    select * from {{ ref('int_vps_cost_intervals') }}
),

ip_costs as (
    select * from {{ ref('int_smtp_ip_cost_intervals') }}
),

resources as (
    select
        'vps' as resource_type,
        vps_instance_id as resource_id,
        hostname as resource_ref,
        valid_from_date,
        valid_to_date,
        tenant_id,
        vps_instance_id,
        true as has_vps,
        monthly_cost,
        cost_source,
        record_monthly_cost,
        price_list_monthly_cost as reference_monthly_cost,
        price_effective_date as reference_effective_date,
        case cost_source
            when 'record' then 'approximate_cost of the VPS record'
            when 'price_list' then 'price list, ' || plan_code || ' ' || billing_cycle
            else
                'no approximate_cost above 0 and no price list row in force for '
                || plan_code || ' ' || billing_cycle
        end as cost_basis
    from vps_costs

    union all

    select
        'smtp_ip' as resource_type,
        smtp_ip_id as resource_id,
        host(ip_address) as resource_ref,
        valid_from_date,
        valid_to_date,
        tenant_id,
        vps_instance_id,
        has_vps,
        monthly_cost,
        cost_source,
        record_monthly_cost,
        dedicated_ip_monthly_cost_usd as reference_monthly_cost,
        constant_effective_date as reference_effective_date,
        case cost_source
            when 'finance_override' then 'Finance override (seeds/smtp_ip_cost_overrides.csv)'
            when 'default_constant' then 'dedicated-IP constant (seeds/cost_assumptions.csv)'
            when 'record' then 'approximate_cost of the IP record'
        end as cost_basis
    from ip_costs
),

final as (
    select
        resource_type,
        resource_id,
        cast(resource_ref as text) as resource_ref,
        {{ resource_key('resource_ref', 'resource_id') }} as resource_key,
        valid_from_date,
        valid_to_date,
        tenant_id,
        vps_instance_id,
        has_vps,
        cast(monthly_cost as numeric(14, 2)) as monthly_cost,
        cost_source,
        cast(record_monthly_cost as numeric(14, 2)) as record_monthly_cost,
        cast(reference_monthly_cost as numeric(14, 2)) as reference_monthly_cost,
        reference_effective_date,
        cost_basis
    from resources
)

select * from final
