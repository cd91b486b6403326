-- Grain: one row per tenant with at least one active subscription, and day of this run's
-- window (history_start_date() to the as-of date).
-- Revenue is the sum of its active subscriptions' monthly USD revenue that day (the rule is
-- int_subscription_revenue_intervals'); the plan name and the current period come from the
-- highest-priced one (ties: plan name, then subscription id).
{{ config(tags=['daily']) }}

with

revenue_intervals as (
    select * from {{ ref('int_subscription_revenue_intervals') }}
),

subscription_days as (
    select
        revenue_intervals.subscription_id,
        revenue_intervals.tenant_id,
        cast(run_days.economics_day as date) as economics_date,
        revenue_intervals.plan_id,
        revenue_intervals.plan_name,
        revenue_intervals.price_monthly,
        revenue_intervals.monthly_revenue_usd,
        revenue_intervals.current_period_start_date,
        revenue_intervals.current_period_end_date,
        row_number() over (
            partition by revenue_intervals.tenant_id, run_days.economics_day
            order by
                revenue_intervals.price_monthly desc nulls last,
                revenue_intervals.plan_name asc,
                revenue_intervals.subscription_id asc
        ) as price_rank
    from revenue_intervals
    cross join
        lateral
        {{ window_days('revenue_intervals.valid_from_date', 'revenue_intervals.valid_to_date') }}
            as run_days (economics_day)
),

per_tenant as (
    select
        tenant_id,
        economics_date,
        count(*) as active_subscription_count,
        coalesce(sum(monthly_revenue_usd), 0.00) as monthly_subscription_revenue
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
