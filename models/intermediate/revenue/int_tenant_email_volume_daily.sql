-- Grain: one row per tenant with billing_analytics rows in a day's 30-day window, and day
-- of this run's window (history_start_date() to the as-of date).
-- A day's window: period_start between the day minus 30 days and the day, both included.
-- Counts every subscription of the tenant (a plan change mid-window keeps its emails).
-- Reads only the billing rows the window's days need, summed per tenant and day first.
{{ config(tags=['daily']) }}

with

billing_analytics as (
    select * from {{ ref('stg_app__billing_analytics') }}
),

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
),

tenant_daily_emails as (
    select
        subscriptions.tenant_id,
        billing_analytics.period_start_date,
        sum(billing_analytics.emails_sent) as emails_sent
    from billing_analytics
    inner join subscriptions
        on billing_analytics.subscription_id = subscriptions.subscription_id
    where
        billing_analytics.period_start_date
        between {{ history_start_date() }} - 30 and {{ as_of_date() }}
    group by subscriptions.tenant_id, billing_analytics.period_start_date
),

-- a billing day counts on the days it is in the window of: itself and the 30 after it
email_days as (
    select
        tenant_daily_emails.tenant_id,
        cast(run_days.economics_day as date) as economics_date,
        tenant_daily_emails.emails_sent
    from tenant_daily_emails
    cross join
        lateral
        {{ window_days(
            'tenant_daily_emails.period_start_date', 'tenant_daily_emails.period_start_date + 31'
        ) }}
            as run_days (economics_day)
),

final as (
    select
        tenant_id,
        economics_date,
        coalesce(sum(emails_sent), 0) as emails_sent_last_30_days
    from email_days
    group by tenant_id, economics_date
)

select * from final
