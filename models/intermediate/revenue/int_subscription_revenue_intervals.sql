-- Grain: one row per active subscription and validity interval [valid_from_date,
-- valid_to_date) of its plan's price (snapshot snap_app__plans). Revenue rule, once: an
-- active subscription counts its plan's monthly list price when it is in USD (other
-- currencies are reported, not converted). Subscription statuses have no history: today's
-- active subscriptions hold for every day.
with

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
),

plan_versions as (
    select * from {{ ref('int_plan_price_versions') }}
),

final as (
    select
        subscriptions.subscription_id,
        -- a plan missing from the plans table: one all-time interval without a price
        coalesce(plan_versions.valid_from_date, cast('-infinity' as date)) as valid_from_date,
        coalesce(plan_versions.valid_to_date, cast('infinity' as date)) as valid_to_date,
        subscriptions.tenant_id,
        subscriptions.plan_id,
        subscriptions.current_period_start_date,
        subscriptions.current_period_end_date,
        plan_versions.plan_name,
        plan_versions.price_monthly,
        plan_versions.currency_code,
        case when plan_versions.currency_code = 'USD' then plan_versions.price_monthly else 0.00 end
            as monthly_revenue_usd
    from subscriptions
    left join plan_versions
        on subscriptions.plan_id = plan_versions.plan_id
    where subscriptions.subscription_status = 'active'
)

select * from final
