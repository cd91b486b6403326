-- Grain: one row per tenant with at least one active subscription, as of var as_of_date.
-- Cost is modeled infrastructure (VPS) plus email service (SMTP IP) cost only: payments are
-- revenue and never part of cost or cost per email. Profit compares the payments collected
-- for the current period with that cost.
{{ config(
    grants=mart_grants(),
    post_hook=[
        "{{ guide_index('idx_business_cost_allocation_tenant', ['tenant_id']) }}",
        "{{ guide_index('idx_business_cost_allocation_plan', ['plan_name']) }}",
        "{{ guide_index('idx_business_cost_allocation_profit', ['monthly_profit'], 'monthly_profit > 0') }}",
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

payments as (
    select * from {{ ref('int_tenant_current_period_payments') }}
),

email_volume as (
    select * from {{ ref('int_tenant_email_volume') }}
),

joined as (
    select
        subscriptions.tenant_id,
        companies.company_name,
        subscriptions.plan_name,
        subscriptions.monthly_subscription_revenue as price_monthly,
        coalesce(infrastructure.infrastructure_cost, 0) as infrastructure_cost,
        coalesce(email_service.email_service_cost, 0) as email_service_cost,
        coalesce(email_volume.emails_sent_last_30_days, 0) as emails_sent,
        coalesce(payments.payments_collected, 0) as payments_collected
    from subscriptions
    left join companies
        on subscriptions.tenant_id = companies.tenant_id
    left join infrastructure
        on subscriptions.tenant_id = infrastructure.tenant_id
    left join email_service
        on subscriptions.tenant_id = email_service.tenant_id
    left join payments
        on subscriptions.tenant_id = payments.tenant_id
    left join email_volume
        on subscriptions.tenant_id = email_volume.tenant_id
),

measured as (
    select
        tenant_id,
        company_name,
        plan_name,
        price_monthly,
        infrastructure_cost,
        email_service_cost,
        emails_sent,
        payments_collected,
        infrastructure_cost + email_service_cost as total_cost
    from joined
),

final as (
    select
        tenant_id,
        company_name,
        plan_name,
        cast(price_monthly as numeric(14, 2)) as price_monthly,
        cast(infrastructure_cost as numeric(14, 2)) as total_infrastructure_cost,
        cast(email_service_cost as numeric(14, 2)) as total_email_service_cost,
        cast(emails_sent as bigint) as emails_sent_last_30_days,
        cast({{ safe_ratio('total_cost', 'emails_sent', 4) }} as numeric(14, 4))
            as cost_per_email_delivered,
        cast(total_cost as numeric(14, 2)) as total_monthly_cost,
        cast(payments_collected as numeric(14, 2)) as payments_collected,
        cast(payments_collected - total_cost as numeric(14, 2)) as monthly_profit,
        cast({{ safe_ratio('payments_collected', 'total_cost') }} as numeric(14, 2))
            as business_efficiency_ratio,
        {{ as_of_date() }} as as_of_date
    from measured
)

select * from final
