-- Grain: one row per tenant with at least one active subscription, as of var as_of_date.
-- Revenue: sum of the tenant's active plan prices. Costs: modeled monthly VPS and SMTP IP
-- costs, each aggregated to the tenant before this join (counted once per tenant).
{{ config(
    grants=mart_grants(),
    post_hook=[
        "{{ guide_index('idx_executive_business_summary_tenant', ['tenant_id']) }}",
        "{{ guide_index('idx_executive_business_summary_date', ['dashboard_date']) }}",
    ]
) }}

with

subscriptions as (
    select * from {{ ref('int_tenant_active_subscriptions') }}
),

companies as (
    select * from {{ ref('stg_app__companies') }}
),

infrastructure as (
    select * from {{ ref('int_tenant_infrastructure_cost') }}
),

email_service as (
    select * from {{ ref('int_tenant_email_service_cost') }}
),

joined as (
    select
        subscriptions.tenant_id,
        companies.company_name,
        subscriptions.plan_name,
        subscriptions.current_period_start_date,
        subscriptions.current_period_end_date,
        subscriptions.monthly_subscription_revenue as revenue,
        coalesce(infrastructure.infrastructure_cost, 0) as infrastructure_cost,
        coalesce(email_service.email_service_cost, 0) as email_service_cost
    from subscriptions
    left join companies
        on subscriptions.tenant_id = companies.tenant_id
    left join infrastructure
        on subscriptions.tenant_id = infrastructure.tenant_id
    left join email_service
        on subscriptions.tenant_id = email_service.tenant_id
),

measured as (
    select
        tenant_id,
        company_name,
        plan_name,
        current_period_start_date,
        current_period_end_date,
        revenue,
        infrastructure_cost,
        email_service_cost,
        infrastructure_cost + email_service_cost as total_cost
    from joined
),

final as (
    select
        tenant_id,
        company_name,
        plan_name,
        current_period_start_date as current_period_start,
        current_period_end_date as current_period_end,
        cast(revenue as numeric(14, 2)) as monthly_subscription_revenue,
        cast(infrastructure_cost as numeric(14, 2)) as infrastructure_costs,
        cast(email_service_cost as numeric(14, 2)) as email_service_costs,
        cast({{ safe_ratio('revenue', 'total_cost') }} as numeric(14, 2)) as gross_margin_ratio,
        cast({{ cost_efficiency_score('revenue', 'total_cost') }} as numeric(5, 2))
            as cost_efficiency_score,
        cast(total_cost as numeric(14, 2)) as total_operational_cost,
        {{ business_health_status('revenue', 'total_cost') }} as business_health_status,
        {{ as_of_date() }} as dashboard_date,
        cast(infrastructure_cost as numeric(14, 2)) as total_infrastructure_cost,
        cast(email_service_cost as numeric(14, 2)) as total_email_service_cost,
        cast(total_cost as numeric(14, 2)) as total_monthly_cost,
        cast(revenue - total_cost as numeric(14, 2)) as monthly_profit
    from measured
)

select * from final
