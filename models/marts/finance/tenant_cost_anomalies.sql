-- Grain: one row per tenant and anomaly type, for the as-of date (executive alerts).
-- cost_moved / cost_per_email_moved: the day's value differs from its average over the
-- var anomaly_trailing_days days before by more than var anomaly_threshold (a fraction);
-- health_status_dropped: the status is worse than the day before (infra-heavy tenant).
-- Each tenant's day, day before and trailing average come from one aggregate over the days
-- the alerts read: no join of the fact to itself, so no planner estimate can turn the
-- comparison into a nested loop over tenants x tenants (PostgreSQL 15 did, at 100,000
-- tenants, when the days were a CTE joined to itself).
{{ config(grants=mart_grants()) }}

{%- set as_of = as_of_date() -%}
{%- set trailing_days = var('anomaly_trailing_days') | int %}

with

-- the days the alerts read (the as-of date, the day before, the trailing days), so the
-- rest of the history is not read
daily as (
    select
        tenant_id,
        economics_date,
        total_monthly_cost,
        cost_per_email,
        business_health_status
    from {{ ref('fct_tenant_economics_daily') }}
    where
        economics_date
        between {{ as_of }} - {{ [trailing_days, 1] | max }}
        and {{ as_of }}
),

per_tenant as (
    select
        tenant_id,
        bool_or(economics_date = {{ as_of }}) as has_today,
        max(total_monthly_cost) filter (
            where economics_date = {{ as_of }}
        ) as today_cost,
        max(cost_per_email) filter (where economics_date = {{ as_of }}) as today_cost_per_email,
        max(business_health_status) filter (
            where economics_date = {{ as_of }}
        ) as today_status,
        max(business_health_status) filter (
            where economics_date = {{ as_of }} - 1
        ) as yesterday_status,
        avg(total_monthly_cost) filter (
            where economics_date >= {{ as_of }} - {{ trailing_days }}
            and economics_date < {{ as_of }}
        ) as average_cost,
        avg(cost_per_email) filter (
            where economics_date >= {{ as_of }} - {{ trailing_days }}
            and economics_date < {{ as_of }}
            and cost_per_email > 0
        ) as average_cost_per_email
    from daily
    group by tenant_id
),

ranked as (
    select
        tenant_id,
        has_today,
        today_cost,
        today_cost_per_email,
        average_cost,
        average_cost_per_email,
        today_status,
        yesterday_status,
        {{ status_order('today_status') }} as today_order,
        {{ status_order('yesterday_status') }} as yesterday_order
    from per_tenant
),

moved as (
    select
        tenant_id,
        'cost_moved' as anomaly_type,
        today_cost as current_value,
        average_cost as baseline_value,
        (today_cost - average_cost) / average_cost as relative_change,
        cast(null as text) as previous_status,
        cast(null as text) as current_status
    from ranked
    where
        has_today
        and average_cost > 0
        and abs((today_cost - average_cost) / average_cost) > {{ var('anomaly_threshold') }}

    union all

    select
        tenant_id,
        'cost_per_email_moved' as anomaly_type,
        today_cost_per_email as current_value,
        average_cost_per_email as baseline_value,
        (today_cost_per_email - average_cost_per_email) / average_cost_per_email
            as relative_change,
        cast(null as text) as previous_status,
        cast(null as text) as current_status
    from ranked
    where
        has_today
        and average_cost_per_email > 0
        and today_cost_per_email > 0
        and abs((today_cost_per_email - average_cost_per_email) / average_cost_per_email)
        > {{ var('anomaly_threshold') }}
),

dropped as (
    select
        tenant_id,
        'health_status_dropped' as anomaly_type,
        cast(null as numeric(14, 4)) as current_value,
        cast(null as numeric(14, 4)) as baseline_value,
        cast(null as numeric(14, 4)) as relative_change,
        yesterday_status as previous_status,
        today_status as current_status
    from ranked
    where today_order < yesterday_order
),

final as (
    select
        tenant_id,
        anomaly_type,
        cast(current_value as numeric(14, 4)) as current_value,
        cast(baseline_value as numeric(14, 4)) as baseline_value,
        cast(round(relative_change, 4) as numeric(14, 4)) as relative_change,
        previous_status,
        current_status,
        {{ as_of }} as as_of_date
    from moved

    union all

    select
        tenant_id,
        anomaly_type,
        current_value,
        baseline_value,
        relative_change,
        previous_status,
        current_status,
        {{ as_of }} as as_of_date
    from dropped
)

select * from final
