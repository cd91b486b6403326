-- Grain: one row per tenant with at least one cost-bearing SMTP IP on one of its VPS.
with

ip_costs as (
    select * from {{ ref('int_smtp_ip_monthly_cost') }}
),

final as (
    select
        tenant_id,
        count(*) as billable_ip_count,
        sum(monthly_cost) as email_service_cost
    from ip_costs
    where tenant_id is not null
    group by tenant_id
)

select * from final
