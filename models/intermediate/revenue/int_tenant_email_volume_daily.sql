-- Grain: one row per tenant with billing_analytics rows in a day's 30-day window, and day
-- of this run's window (history_start_date() to the as-of date).
-- A day's window: period_start between the day minus 30 days and the day, both included.
-- Counts every subscription of the tenant (a plan change mid-window keeps its emails).
-- Reads only the billing rows the window's days need, summed per tenant and day first, then
-- one running 30-day sum per tenant (linear in tenants x days read).
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

-- every day of the run's window, for each tenant read, so a day without a billing row of
-- its own still gets its window
window_days as (
    select
        tenants.tenant_id,
        cast(run_days.economics_day as date) as period_start_date,
        0 as emails_sent
    from (select distinct tenant_id from tenant_daily_emails) as tenants
    cross join
        generate_series({{ history_start_date() }}, {{ as_of_date() }}, interval '1 day')
            as run_days (economics_day)
),

windowed as (
    select
        tenant_id,
        period_start_date,
        sum(emails_sent) over (
            partition by tenant_id
            order by period_start_date
            range between interval '30 days' preceding and current row
        ) as emails_sent_last_30_days
    from (
        select
            tenant_id,
            period_start_date,
            emails_sent
        from tenant_daily_emails
        union all
        select
            tenant_id,
            period_start_date,
            emails_sent
        from window_days
    ) as emails
),

final as (
    select
        tenant_id,
        period_start_date as economics_date,
        coalesce(max(emails_sent_last_30_days), 0) as emails_sent_last_30_days
    from windowed
    where period_start_date between {{ history_start_date() }} and {{ as_of_date() }}
    group by tenant_id, period_start_date
)

select * from final
