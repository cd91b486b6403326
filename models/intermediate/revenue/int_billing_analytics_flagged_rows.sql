-- Grain: one row per billing_analytics row that this run's 30-day email windows read (its
-- period_start on or after the run's first day minus 30 days) and that breaks a rule of the
-- usage feed: a subscription that does not exist, no emails_sent, a negative emails_sent, a
-- period that ends before it starts. Empty on a good day.
-- The usage rows' data tests read this table: one pass over the largest application table
-- for the four of them, not one pass each (the table has no index on period_start, so each
-- test read all of its rows). The email windows (int_tenant_email_volume_daily) read the
-- same rows and do not wait for it.
with

billing_analytics as (
    select * from {{ ref('stg_app__billing_analytics') }}
),

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
),

final as (
    select
        billing_analytics.billing_analytics_id,
        billing_analytics.subscription_id,
        billing_analytics.period_start_date,
        billing_analytics.period_end_date,
        billing_analytics.emails_sent
    from billing_analytics
    left join subscriptions
        on billing_analytics.subscription_id = subscriptions.subscription_id
    where
        billing_analytics.period_start_date >= {{ history_start_date() }} - 30
        and (
            subscriptions.subscription_id is null
            or billing_analytics.emails_sent is null
            or billing_analytics.emails_sent < 0
            or billing_analytics.period_end_date < billing_analytics.period_start_date
        )
)

select * from final
