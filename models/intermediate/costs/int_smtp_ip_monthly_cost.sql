-- Grain: one row per cost-bearing SMTP IP (status active, warmed or warming).
-- Monthly cost, first rule that applies: a Finance override row (any value, 0 included, for
-- bundled IPs); the record's approximate_cost when above 0; the dedicated-IP constant from
-- cost_assumptions for a dedicated IP; else the record value (usually 0) for a shared IP.
-- The tenant is the tenant of the IP's VPS (NULL for unassigned and shared-pool IPs).
with

smtp_ips as (
    select * from {{ ref('stg_app__smtp_ip_addresses') }}
),

vps_instances as (
    select * from {{ ref('stg_app__vps_instances') }}
),

overrides as (
    select * from {{ ref('smtp_ip_cost_overrides') }}
),

cost_assumptions as (
    select * from {{ ref('cost_assumptions') }}
),

current_assumption as (
    select dedicated_ip_monthly_cost_usd
    from cost_assumptions
    where effective_date <= {{ as_of_date() }}
    order by effective_date desc
    limit 1
),

billable_ips as (
    select
        smtp_ip_id,
        vps_instance_id,
        is_dedicated,
        ip_status,
        record_monthly_cost
    from smtp_ips
    where ip_status in ('active', 'warmed', 'warming')
),

final as (
    select
        billable_ips.smtp_ip_id,
        billable_ips.vps_instance_id,
        vps_instances.tenant_id,
        (vps_instances.vps_instance_id is not null) as has_vps,
        billable_ips.is_dedicated,
        billable_ips.ip_status,
        billable_ips.record_monthly_cost,
        case
            when overrides.smtp_ip_id is not null then overrides.monthly_cost_usd
            when billable_ips.record_monthly_cost > 0 then billable_ips.record_monthly_cost
            when billable_ips.is_dedicated then current_assumption.dedicated_ip_monthly_cost_usd
            else coalesce(billable_ips.record_monthly_cost, 0)
        end as monthly_cost,
        case
            when overrides.smtp_ip_id is not null then 'finance_override'
            when billable_ips.record_monthly_cost > 0 then 'record'
            when billable_ips.is_dedicated then 'default_constant'
            else 'record'
        end as cost_source
    from billable_ips
    left join vps_instances
        on billable_ips.vps_instance_id = vps_instances.vps_instance_id
    left join overrides
        on billable_ips.smtp_ip_id = overrides.smtp_ip_id
    -- left join: with no assumption in force the cost is NULL and a test fails, rather
    -- than every IP silently dropping out
    left join current_assumption on true
)

select * from final
