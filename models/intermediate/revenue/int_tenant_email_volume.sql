-- Grain: one row per tenant with billing_analytics rows in the 30-day window.
-- Window: period_start between the as-of date minus 30 days and the as-of date, inclusive.
-- Counts every subscription of the tenant (a plan change mid-window keeps its emails).
with

billing_analytics as (
    select * from {{ ref('stg_app__billing_analytics') }}
),

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
),

windowed as (
    select
        subscription_id,
        emails_sent,
        emails_delivered
    from billing_analytics
    where period_start_date between {{ as_of_date() }} - 30 and {{ as_of_date() }}
),

final as (
    select
        subscriptions.tenant_id,
        coalesce(sum(windowed.emails_sent), 0) as emails_sent_last_30_days,
        sum(windowed.emails_delivered) as emails_delivered_last_30_days
    from windowed
    inner join subscriptions
        on windowed.subscription_id = subscriptions.subscription_id
    group by subscriptions.tenant_id
)

select * from final
