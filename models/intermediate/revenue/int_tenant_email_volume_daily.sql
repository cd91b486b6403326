-- Grain: one row per tenant with billing_analytics rows in a day's 30-day window, and day
-- of this run's window (history_start_date() to the as-of date).
-- A day's window: period_start between the day minus 30 days and the day, both included.
-- Counts every subscription of the tenant (a plan change mid-window keeps its emails).
-- Linear in the billing rows read, with no sort of them, in one of two ways that give the
-- same rows (the unit tests run both on the same fixtures):
-- - a run of up to var email_window_direct_max_days days (a daily run): each day's window
--   is its own filtered sum, all in one pass over the rows and one group per tenant;
-- - a longer run (a backfill): the first day's window is one sum per tenant, and each later
--   day adds the emails of the day that enters its window and takes off those of the day
--   that leaves it (a running sum over a few rows per tenant).
{{ config(tags=['daily']) }}

{%- set days = run_days() %}
{%- set direct = 0 < days | length <= var('email_window_direct_max_days') | int %}

with

billing_analytics as (
    select * from {{ ref('stg_app__billing_analytics') }}
),

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
),

-- the rows some window of the run reads, with their tenant
window_rows as (
    select
        subscriptions.tenant_id,
        billing_analytics.period_start_date,
        billing_analytics.emails_sent
    from billing_analytics
    inner join subscriptions
        on billing_analytics.subscription_id = subscriptions.subscription_id
    where
        billing_analytics.period_start_date
        between {{ history_start_date() }} - 30 and {{ as_of_date() }}
),

{% if direct -%}
-- each day of the run: the emails of its window, per tenant whose rows some window reads
-- (sqlfluff measures the indent of a loop's rendered lines, not of the template: LT02 off
-- around the two loops)
-- noqa: disable=LT02
tenant_windows as (
    select
        tenant_id,
        {%- for day in days %}
        sum(emails_sent) filter (
            where period_start_date
            between cast('{{ day }}' as date) - 30 and cast('{{ day }}' as date)
        ) as emails_day_{{ loop.index }}{{ "," if not loop.last }}
        {%- endfor %}
    from window_rows
    group by tenant_id
),

final as (
    select
        tenant_windows.tenant_id,
        run_days.economics_date,
        coalesce(run_days.emails_sent, 0) as emails_sent_last_30_days
    from tenant_windows
    cross join
        lateral (
            values
            {%- for day in days %}
            (cast('{{ day }}' as date), tenant_windows.emails_day_{{ loop.index }})
            {{- "," if not loop.last }}
            {%- endfor %}
        ) as run_days (economics_date, emails_sent)
)
-- noqa: enable=LT02
{%- else -%}
-- the rows some window of the run reads, summed per tenant and day; the days that only
-- ever count in full (inside the first day's window and still inside the last one's) are
-- one bucket on the first day
tenant_day_emails as (
    select
        tenant_id,
        case
            when
                period_start_date <= {{ history_start_date() }}
                and period_start_date > {{ as_of_date() }} - 31
                then {{ history_start_date() }}
            else period_start_date
        end as bucket_date,
        sum(emails_sent) as emails_sent
    from window_rows
    group by tenant_id, bucket_date
),

-- each day's change to the window: + on the day a row enters (the first day for the rows
-- already inside), - on the day it leaves (31 days after its own)
window_changes as (
    select
        tenant_id,
        greatest(bucket_date, {{ history_start_date() }}) as economics_date,
        emails_sent as emails_change
    from tenant_day_emails
    union all
    select
        tenant_id,
        bucket_date + 31 as economics_date,
        -emails_sent as emails_change
    from tenant_day_emails
    where bucket_date + 31 <= {{ as_of_date() }}
    union all
    -- every day of the run's window for each tenant read, so a day without a change of its
    -- own still gets its window
    select
        tenants.tenant_id,
        cast(run_days.economics_day as date) as economics_date,
        0 as emails_change
    from (select distinct tenant_day_emails.tenant_id from tenant_day_emails) as tenants
    cross join
        generate_series({{ history_start_date() }}, {{ as_of_date() }}, interval '1 day')
            as run_days (economics_day)
),

daily_changes as (
    select
        tenant_id,
        economics_date,
        sum(emails_change) as emails_change
    from window_changes
    group by tenant_id, economics_date
),

final as (
    select
        tenant_id,
        economics_date,
        sum(emails_change) over (
            partition by tenant_id
            order by economics_date
            rows between unbounded preceding and current row
        ) as emails_sent_last_30_days
    from daily_changes
)

{%- endif %}

select * from final
