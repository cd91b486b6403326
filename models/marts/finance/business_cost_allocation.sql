-- Grain: one row per tenant with at least one active subscription, as of var as_of_date.
-- The as-of day of fct_tenant_economics_daily with the company name. Cost is modeled
-- infrastructure (VPS) plus email service (SMTP IP) cost only: payments are revenue and
-- never part of cost or cost per email. Profit here compares the payments collected for
-- the current period with that cost (the executive summary's compares the list revenue).
{{ config(
    grants=mart_grants(),
    post_hook=[
        "{{ guide_index('idx_business_cost_allocation_tenant', ['tenant_id']) }}",
        "{{ guide_index('idx_business_cost_allocation_plan', ['plan_name']) }}",
        "{{ guide_index('idx_business_cost_allocation_profit', ['monthly_profit'], 'monthly_profit > 0') }}",
    ]
) }}

with

daily as (
    select * from {{ ref('fct_tenant_economics_daily') }}
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
        emails_sent_last_30_days,
        cost_per_email,
        payments_collected,
        business_efficiency_ratio
    from daily
    where economics_date = {{ as_of_date() }}
),

final as (
    select
        as_of_day.tenant_id,
        companies.company_name,
        as_of_day.plan_name,
        as_of_day.monthly_subscription_revenue as price_monthly,
        as_of_day.infrastructure_cost as total_infrastructure_cost,
        as_of_day.email_service_cost as total_email_service_cost,
        as_of_day.emails_sent_last_30_days,
        as_of_day.cost_per_email as cost_per_email_delivered,
        as_of_day.total_monthly_cost,
        as_of_day.payments_collected,
        cast(as_of_day.payments_collected - as_of_day.total_monthly_cost as numeric(14, 2))
            as monthly_profit,
        as_of_day.business_efficiency_ratio,
        {{ as_of_date() }} as as_of_date
    from as_of_day
    left join companies
        on as_of_day.tenant_id = companies.tenant_id
)

select * from final
