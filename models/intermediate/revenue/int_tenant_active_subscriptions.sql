-- Grain: one row per tenant with at least one active subscription.
-- Revenue is the sum of the USD list prices of all its active subscriptions; the plan name
-- and the period come from the highest-priced one (ties: plan name, then subscription id).
with

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
),

plans as (
    select * from {{ ref('stg_app__plans') }}
),

active_subscriptions as (
    select
        subscriptions.subscription_id,
        subscriptions.tenant_id,
        subscriptions.plan_id,
        subscriptions.current_period_start_date,
        subscriptions.current_period_end_date,
        plans.plan_name,
        plans.price_monthly,
        plans.currency_code
    from subscriptions
    left join plans
        on subscriptions.plan_id = plans.plan_id
    where subscriptions.subscription_status = 'active'
),

ranked as (
    select
        subscription_id,
        tenant_id,
        plan_id,
        plan_name,
        current_period_start_date,
        current_period_end_date,
        row_number() over (
            partition by tenant_id
            order by price_monthly desc nulls last, plan_name asc, subscription_id asc
        ) as price_rank
    from active_subscriptions
),

per_tenant as (
    select
        tenant_id,
        count(*) as active_subscription_count,
        coalesce(sum(price_monthly) filter (where currency_code = 'USD'), 0.00)
            as monthly_subscription_revenue
    from active_subscriptions
    group by tenant_id
),

final as (
    select
        per_tenant.tenant_id,
        ranked.subscription_id as primary_subscription_id,
        ranked.plan_id as primary_plan_id,
        ranked.plan_name,
        ranked.current_period_start_date,
        ranked.current_period_end_date,
        per_tenant.active_subscription_count,
        per_tenant.monthly_subscription_revenue
    from per_tenant
    inner join ranked
        on
            per_tenant.tenant_id = ranked.tenant_id
            and ranked.price_rank = 1
)

select * from final
