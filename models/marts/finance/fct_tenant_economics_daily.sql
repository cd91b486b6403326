-- Grain: one row per tenant with an active subscription and day (economics_date).
-- The tenant-level daily facts (revenue, VPS and SMTP IP cost, payments, emails), each
-- aggregated to the tenant and day upstream, joined and measured once: the marts are this
-- table's as-of day. Prices, price list and cost assumptions are those captured for each
-- day (snapshots, via the cost intervals). Incremental: a run recomputes the days from
-- history_start_date() (as-of minus the lookback, or var history_start for a backfill) to the
-- as-of date; older days are kept as they were. The candidate starts from the published
-- days outside the run's window (meta run_window_column, macros/publication.sql), or, for a
-- long history, from the days before it that the anomalies read (meta read_days_var), and
-- the publish merges the run's days into the published table (pmcost/history_merge.py). The
-- pre-hook deletes every row of the recomputed days wherever they are (the published table
-- itself when built with publish_stage published; a delete by key would keep a tenant that
-- is no longer active), so the run appends its days: dbt's delete+insert would join the
-- whole history to them again to delete nothing. The primary-key test checks the run's days.
-- Indexes: economics_date (the dashboards, the anomalies, the merge) and MetricFlow's day
-- (date_trunc('day', economics_date::timestamp), the semantic model's time dimension), so a
-- metric read for a few days reads those days, not the whole history.
{{ config(
    tags=['daily'],
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    grants=mart_grants(),
    meta={'run_window_column': 'economics_date', 'read_days_var': 'anomaly_trailing_days'},
    pre_hook=[
        "{% if is_incremental() %}delete from {{ this }} where economics_date between "
        ~ "{{ history_start_date() }} and {{ as_of_date() }}{% endif %}"
    ],
    post_hook=[
        "create index if not exists {{ this.name }}_date_idx on {{ this }} (economics_date)",
        "create index if not exists {{ this.name }}_metric_day_idx on {{ this }} "
        ~ "(date_trunc('day', economics_date::timestamp))",
    ],
) }}

with

subscriptions as (
    select * from {{ ref('int_tenant_subscriptions_daily') }}
),

resource_costs as (
    select * from {{ ref('int_tenant_resource_cost_daily') }}
),

payments as (
    select * from {{ ref('int_tenant_payments_daily') }}
),

email_volume as (
    select * from {{ ref('int_tenant_email_volume_daily') }}
),

joined as (
    select
        subscriptions.tenant_id,
        subscriptions.economics_date,
        subscriptions.plan_name,
        subscriptions.monthly_subscription_revenue as revenue,
        coalesce(resource_costs.infrastructure_cost, 0) as infrastructure_cost,
        coalesce(resource_costs.email_service_cost, 0) as email_service_cost,
        coalesce(email_volume.emails_sent_last_30_days, 0) as emails_sent,
        coalesce(payments.payments_collected, 0) as payments_collected
    from subscriptions
    left join resource_costs
        on
            subscriptions.tenant_id = resource_costs.tenant_id
            and subscriptions.economics_date = resource_costs.economics_date
    left join email_volume
        on
            subscriptions.tenant_id = email_volume.tenant_id
            and subscriptions.economics_date = email_volume.economics_date
    left join payments
        on
            subscriptions.tenant_id = payments.tenant_id
            and subscriptions.economics_date = payments.economics_date
),

measured as (
    select
        tenant_id,
        economics_date,
        plan_name,
        revenue,
        infrastructure_cost,
        email_service_cost,
        emails_sent,
        payments_collected,
        infrastructure_cost + email_service_cost as total_cost
    from joined
),

final as (
    select
        tenant_id,
        economics_date,
        plan_name,
        cast(revenue as numeric(14, 2)) as monthly_subscription_revenue,
        cast(infrastructure_cost as numeric(14, 2)) as infrastructure_cost,
        cast(email_service_cost as numeric(14, 2)) as email_service_cost,
        cast(total_cost as numeric(14, 2)) as total_monthly_cost,
        cast(revenue - total_cost as numeric(14, 2)) as monthly_profit,
        cast({{ safe_ratio('revenue', 'total_cost') }} as numeric(14, 2)) as gross_margin_ratio,
        cast({{ cost_efficiency_score('revenue', 'total_cost') }} as numeric(5, 2))
            as cost_efficiency_score,
        {{ business_health_status('revenue', 'total_cost') }} as business_health_status,
        cast(emails_sent as bigint) as emails_sent_last_30_days,
        cast({{ safe_ratio('total_cost', 'emails_sent', 4) }} as numeric(14, 4)) as cost_per_email,
        cast(payments_collected as numeric(14, 2)) as payments_collected,
        cast({{ safe_ratio('payments_collected', 'total_cost') }} as numeric(14, 2))
            as business_efficiency_ratio
    from measured
)

select * from final
