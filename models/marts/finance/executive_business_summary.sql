-- Grain: one row per tenant with at least one active subscription, as of var as_of_date.
-- The as-of day of fct_tenant_economics_daily (revenue: sum of the tenant's active plan
-- prices; costs: modeled monthly VPS and SMTP IP costs, each aggregated to the tenant
-- before any join), with the company name and the primary subscription's current period.
{{ config(
    grants=mart_grants(),
    post_hook=[
        "{{ guide_index('idx_executive_business_summary_tenant', ['tenant_id']) }}",
        "{{ guide_index('idx_executive_business_summary_date', ['dashboard_date']) }}",
    ]
) }}

with

daily as (
    select * from {{ ref('fct_tenant_economics_daily') }}
),

subscriptions as (
    select * from {{ ref('int_tenant_subscriptions_daily') }}
),

companies as (
    select * from {{ ref('stg_app__companies') }}
),

as_of_day as (
    select
        tenant_id,
        plan_name,
        monthly_subscription_revenue,
        infrastructure_cost,
        email_service_cost,
        total_monthly_cost,
        monthly_profit,
        gross_margin_ratio,
        cost_efficiency_score,
        business_health_status
    from daily
    where economics_date = {{ as_of_date() }}
),

as_of_subscriptions as (
    select
        tenant_id,
        current_period_start_date,
        current_period_end_date
    from subscriptions
    where economics_date = {{ as_of_date() }}
),

final as (
    select
        as_of_day.tenant_id,
        companies.company_name,
        as_of_day.plan_name,
        as_of_subscriptions.current_period_start_date as current_period_start,
        as_of_subscriptions.current_period_end_date as current_period_end,
        as_of_day.monthly_subscription_revenue,
        as_of_day.infrastructure_cost as infrastructure_costs,
        as_of_day.email_service_cost as email_service_costs,
        as_of_day.gross_margin_ratio,
        as_of_day.cost_efficiency_score,
        as_of_day.total_monthly_cost as total_operational_cost,
        as_of_day.business_health_status,
        {{ as_of_date() }} as dashboard_date,
        as_of_day.infrastructure_cost as total_infrastructure_cost,
        as_of_day.email_service_cost as total_email_service_cost,
        as_of_day.total_monthly_cost,
        as_of_day.monthly_profit
    from as_of_day
    left join as_of_subscriptions
        on as_of_day.tenant_id = as_of_subscriptions.tenant_id
    left join companies
        on as_of_day.tenant_id = companies.tenant_id
)

select * from final
