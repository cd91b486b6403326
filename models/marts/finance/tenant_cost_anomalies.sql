-- Grain: one row per tenant and anomaly type, for the as-of date (executive alerts).
-- cost_moved / cost_per_email_moved: the day's value differs from its average over the
-- var anomaly_trailing_days days before by more than var anomaly_threshold (a fraction);
-- health_status_dropped: the status is worse than the day before (infra-heavy tenant).
{{ config(grants=mart_grants()) }}

with

-- the days the alerts read (the as-of date, the day before, the trailing days), so the
-- rest of the history is not read: this CTE is read three times, and PostgreSQL then
-- writes it out whole
daily as (
    select * from {{ ref('fct_tenant_economics_daily') }}
    where
        economics_date
        between {{ as_of_date() }} - {{ [var('anomaly_trailing_days') | int, 1] | max }}
        and {{ as_of_date() }}
),

today as (
    select
        tenant_id,
        economics_date,
        total_monthly_cost,
        cost_per_email,
        business_health_status
    from daily
    where economics_date = {{ as_of_date() }}
),

trailing_window as (
    select
        tenant_id,
        avg(total_monthly_cost) as average_cost,
        avg(cost_per_email) filter (where cost_per_email > 0) as average_cost_per_email,
        count(*) as trailing_days
    from daily
    where
        economics_date >= {{ as_of_date() }} - {{ var('anomaly_trailing_days') | int }}
        and economics_date < {{ as_of_date() }}
    group by tenant_id
),

yesterday as (
    select
        tenant_id,
        business_health_status
    from daily
    where economics_date = {{ as_of_date() }} - 1
),

status_rank as (
    select
        status_name,
        status_order
    from (
        values
        ('Excellent', 4),
        ('Good', 3),
        ('Monitor', 2),
        ('Critical Action Required', 1)
    ) as statuses (status_name, status_order)
),

candidates as (
    select
        today.tenant_id,
        'cost_moved' as anomaly_type,
        today.total_monthly_cost as current_value,
        trailing_window.average_cost as baseline_value,
        (today.total_monthly_cost - trailing_window.average_cost) / trailing_window.average_cost
            as relative_change
    from today
    inner join trailing_window
        on today.tenant_id = trailing_window.tenant_id
    where trailing_window.average_cost > 0

    union all

    select
        today.tenant_id,
        'cost_per_email_moved' as anomaly_type,
        today.cost_per_email as current_value,
        trailing_window.average_cost_per_email as baseline_value,
        (today.cost_per_email - trailing_window.average_cost_per_email)
        / trailing_window.average_cost_per_email as relative_change
    from today
    inner join trailing_window
        on today.tenant_id = trailing_window.tenant_id
    where trailing_window.average_cost_per_email > 0 and today.cost_per_email > 0
),

moved as (
    select
        tenant_id,
        anomaly_type,
        current_value,
        baseline_value,
        relative_change,
        cast(null as text) as previous_status,
        cast(null as text) as current_status
    from candidates
    where abs(relative_change) > {{ var('anomaly_threshold') }}
),

dropped as (
    select
        today.tenant_id,
        'health_status_dropped' as anomaly_type,
        cast(null as numeric(14, 4)) as current_value,
        cast(null as numeric(14, 4)) as baseline_value,
        cast(null as numeric(14, 4)) as relative_change,
        yesterday.business_health_status as previous_status,
        today.business_health_status as current_status
    from today
    inner join yesterday
        on today.tenant_id = yesterday.tenant_id
    inner join status_rank as current_rank
        on today.business_health_status = current_rank.status_name
    inner join status_rank as previous_rank
        on yesterday.business_health_status = previous_rank.status_name
    where current_rank.status_order < previous_rank.status_order
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
        {{ as_of_date() }} as as_of_date
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
        {{ as_of_date() }} as as_of_date
    from dropped
)

select * from final
