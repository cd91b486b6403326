-- Grain: one row per cost-bearing SMTP IP (status active, warmed or warming) and validity
-- interval [valid_from_date, valid_to_date) of its cost. Monthly cost, first rule that
-- applies: a Finance override row (any value, 0 included, for bundled IPs); the record's
-- approximate_cost when above 0; the dedicated-IP constant in force for a dedicated IP;
-- else the record value (usually 0) for a shared IP. Only the constant changes over time:
-- dedicated IPs without an override follow its intervals (priced by it, or with it shown
-- beside their record value, for the drift report); other IPs have one all-time interval.
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

constant_intervals as (
    select * from {{ ref('int_dedicated_ip_cost_intervals') }}
),

billable_ips as (
    select
        smtp_ips.smtp_ip_id,
        smtp_ips.vps_instance_id,
        smtp_ips.ip_address,
        smtp_ips.is_dedicated,
        smtp_ips.ip_status,
        smtp_ips.record_monthly_cost,
        overrides.monthly_cost_usd as override_monthly_cost,
        (overrides.smtp_ip_id is not null) as has_override
    from smtp_ips
    left join overrides
        on smtp_ips.smtp_ip_id = overrides.smtp_ip_id
    where smtp_ips.ip_status in ('active', 'warmed', 'warming')
),

ruled as (
    select
        smtp_ip_id,
        vps_instance_id,
        ip_address,
        is_dedicated,
        ip_status,
        record_monthly_cost,
        override_monthly_cost,
        case
            when has_override then 'finance_override'
            when record_monthly_cost > 0 then 'record'
            when is_dedicated then 'default_constant'
            else 'record'
        end as cost_source
    from billable_ips
),

final as (
    select
        ruled.smtp_ip_id,
        coalesce(constant_intervals.valid_from_date, cast('-infinity' as date))
            as valid_from_date,
        coalesce(constant_intervals.valid_to_date, cast('infinity' as date)) as valid_to_date,
        ruled.vps_instance_id,
        vps_instances.tenant_id,
        (vps_instances.vps_instance_id is not null) as has_vps,
        ruled.ip_address,
        ruled.is_dedicated,
        ruled.ip_status,
        ruled.record_monthly_cost,
        constant_intervals.dedicated_ip_monthly_cost_usd,
        constant_intervals.constant_effective_date,
        case ruled.cost_source
            when 'finance_override' then ruled.override_monthly_cost
            when 'default_constant' then constant_intervals.dedicated_ip_monthly_cost_usd
            else coalesce(ruled.record_monthly_cost, 0.00)
        end as monthly_cost,
        ruled.cost_source
    from ruled
    left join vps_instances
        on ruled.vps_instance_id = vps_instances.vps_instance_id
    -- dedicated IPs without an override follow the constant's intervals; the others hold
    -- for all time
    left join constant_intervals
        on ruled.is_dedicated and ruled.cost_source <> 'finance_override'
)

select * from final
