-- Grain: one row per billing_analytics row that this run's 30-day email windows read (its
-- period_start on or after the run's first day minus 30 days) and that breaks a rule of the
-- row itself: no emails_sent, a negative emails_sent, a period that ends before it starts.
-- Empty on a good day.
-- The usage rows' tests of those rules read this table: one filtered pass over the largest
-- application table for the three of them, not one pass each (the table has no index on
-- period_start, so each test read all of its rows). The email windows
-- (int_tenant_email_volume_daily) read the same rows and do not wait for it. A row's
-- subscription is checked apart, on the staging model (billing_row_of_unknown_subscription):
-- joined here, every row of the windows would go through a hash join whose table of
-- subscriptions outgrows work_mem at a million tenants.
with

billing_analytics as (
    select * from {{ ref('stg_app__billing_analytics') }}
),

final as (
    select
        billing_analytics_id,
        subscription_id,
        period_start_date,
        period_end_date,
        emails_sent
    from billing_analytics
    where
        -- the rows the subscription test reads too (macros/run_window.sql)
        {{ run_window_condition({'column': 'period_start_date', 'days_before': 30}) }}
        and (
            emails_sent is null
            or emails_sent < 0
            or period_end_date < period_start_date
        )
)

select * from final
