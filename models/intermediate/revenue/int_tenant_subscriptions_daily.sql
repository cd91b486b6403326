-- Grain: one row per tenant with at least one active subscription, and day of this run's
-- window (history_start_date() to the as-of date).
-- Revenue is the sum of the USD list prices of all its active subscriptions, each priced
-- with the plan version valid that day (snapshot snap_app__plans); the plan name and the
-- current period come from the highest-priced one (ties: plan name, then subscription id).
-- Subscription statuses have no history: today's active subscriptions hold for every day.
{{ config(tags=['daily']) }}

with

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
),

plan_versions as (
    select * from {{ ref('int_plan_price_versions') }}
),

priced as (
    select
        subscriptions.subscription_id,
        subscriptions.tenant_id,
        subscriptions.plan_id,
        subscriptions.current_period_start_date,
        subscriptions.current_period_end_date,
        plan_versions.plan_name,
        plan_versions.price_monthly,
        plan_versions.currency_code,
        -- a plan missing from the plans table: one all-time interval without a price
        coalesce(plan_versions.valid_from_date, cast('-infinity' as date)) as valid_from_date,
        coalesce(plan_versions.valid_to_date, cast('infinity' as date)) as valid_to_date
    from subscriptions
    left join plan_versions
        on subscriptions.plan_id = plan_versions.plan_id
    where subscriptions.subscription_status = 'active'
),

subscription_days as (
    select
        priced.subscription_id,
        priced.tenant_id,
        cast(run_days.economics_day as date) as economics_date,
        priced.plan_id,
        priced.plan_name,
        priced.price_monthly,
        priced.currency_code,
        priced.current_period_start_date,
        priced.current_period_end_date,
        row_number() over (
            partition by priced.tenant_id, run_days.economics_day
            order by
                priced.price_monthly desc nulls last,
                priced.plan_name asc,
                priced.subscription_id asc
        ) as price_rank
    from priced
    cross join
        lateral
        {{ window_days('priced.valid_from_date', 'priced.valid_to_date') }}
            as run_days (economics_day)
),

per_tenant as (
    select
        tenant_id,
        economics_date,
        count(*) as active_subscription_count,
        coalesce(sum(price_monthly) filter (where currency_code = 'USD'), 0.00)
            as monthly_subscription_revenue
    from subscription_days
    group by tenant_id, economics_date
),

final as (
    select
        per_tenant.tenant_id,
        per_tenant.economics_date,
        subscription_days.subscription_id as primary_subscription_id,
        subscription_days.plan_id as primary_plan_id,
        subscription_days.plan_name,
        subscription_days.current_period_start_date,
        subscription_days.current_period_end_date,
        per_tenant.active_subscription_count,
        per_tenant.monthly_subscription_revenue
    from per_tenant
    inner join subscription_days
        on
            per_tenant.tenant_id = subscription_days.tenant_id
            and per_tenant.economics_date = subscription_days.economics_date
            and subscription_days.price_rank = 1
)

select * from final
