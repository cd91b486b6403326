-- Grain: one row per tenant with an active subscription and day (economics_date).
-- The marts' definitions for each day, with the plan prices, price list and cost assumptions
-- captured for that day (snapshots). Incremental: a run recomputes the days from
-- history_start_date() (as-of minus the lookback, or var history_start for a backfill) to the
-- as-of date; older days are kept as they were. The pre-hook first deletes every row of the
-- recomputed days (delete+insert alone would keep a tenant that is no longer active).
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['tenant_id', 'economics_date'],
    on_schema_change='fail',
    grants=mart_grants(),
    pre_hook=[
        "{% if is_incremental() %}delete from {{ this }} where economics_date between "
        ~ "{{ history_start_date() }} and {{ as_of_date() }}{% endif %}"
    ],
    post_hook=["create index if not exists {{ this.name }}_date_idx on {{ this }} (economics_date)"],
) }}

with

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
),

plan_versions as (
    select * from {{ ref('int_plan_price_versions') }}
),

vps_instances as (
    select * from {{ ref('stg_app__vps_instances') }}
),

price_versions as (
    select * from {{ ref('int_vps_price_list_versions') }}
),

billing_cycles as (
    select * from {{ ref('billing_cycles') }}
),

smtp_ips as (
    select * from {{ ref('stg_app__smtp_ip_addresses') }}
),

overrides as (
    select * from {{ ref('smtp_ip_cost_overrides') }}
),

assumption_versions as (
    select * from {{ ref('int_cost_assumption_versions') }}
),

payments as (
    select * from {{ ref('stg_app__payments') }}
),

billing_analytics as (
    select * from {{ ref('stg_app__billing_analytics') }}
),

days as (
    select cast(day_start as date) as economics_date
    from generate_series(
        {{ history_start_date() }}, {{ as_of_date() }}, interval '1 day'
    ) as day_start
),

-- revenue: the active subscriptions, priced with the plan version valid that day
subscription_days as (
    select
        days.economics_date,
        subscriptions.subscription_id,
        subscriptions.tenant_id,
        plan_versions.plan_name,
        plan_versions.price_monthly,
        plan_versions.currency_code
    from subscriptions
    cross join days
    left join plan_versions
        on
            subscriptions.plan_id = plan_versions.plan_id
            and days.economics_date >= plan_versions.valid_from_date
            and days.economics_date < plan_versions.valid_to_date
    where subscriptions.subscription_status = 'active'
),

tenant_revenue as (
    select
        economics_date,
        tenant_id,
        coalesce(sum(price_monthly) filter (where currency_code = 'USD'), 0.00) as revenue,
        (array_agg(
            plan_name order by price_monthly desc nulls last, plan_name asc, subscription_id asc
        ))[1] as plan_name
    from subscription_days
    group by economics_date, tenant_id
),

-- infrastructure: active VPS, record value or the price list in force that day
day_prices as (
    select
        days.economics_date,
        price_versions.plan_code,
        price_versions.billing_cycle,
        round(price_versions.cycle_price_usd / billing_cycles.months_per_cycle, 2)
            as monthly_price,
        row_number() over (
            partition by
                days.economics_date, price_versions.plan_code,
                price_versions.billing_cycle
            order by price_versions.effective_date desc
        ) as recency_rank
    from days
    inner join price_versions
        on
            days.economics_date >= price_versions.valid_from_date
            and days.economics_date < price_versions.valid_to_date
            and days.economics_date >= price_versions.effective_date
    inner join billing_cycles
        on price_versions.billing_cycle = lower(trim(billing_cycles.billing_cycle))
),

tenant_infrastructure as (
    select
        days.economics_date,
        vps_instances.tenant_id,
        sum(
            case
                when vps_instances.record_monthly_cost > 0 then vps_instances.record_monthly_cost
                else day_prices.monthly_price
            end
        ) as infrastructure_cost
    from vps_instances
    cross join days
    left join day_prices
        on
            days.economics_date = day_prices.economics_date
            and vps_instances.plan_code = day_prices.plan_code
            and vps_instances.billing_cycle = day_prices.billing_cycle
            and day_prices.recency_rank = 1
    where vps_instances.vps_status = 'active' and vps_instances.tenant_id is not null
    group by days.economics_date, vps_instances.tenant_id
),

-- email service: cost-bearing IPs, with the dedicated-IP constant in force that day
day_constant as (
    select
        days.economics_date,
        assumption_versions.dedicated_ip_monthly_cost_usd,
        row_number() over (
            partition by days.economics_date order by assumption_versions.effective_date desc
        ) as recency_rank
    from days
    inner join assumption_versions
        on
            days.economics_date >= assumption_versions.valid_from_date
            and days.economics_date < assumption_versions.valid_to_date
            and days.economics_date >= assumption_versions.effective_date
),

tenant_email_service as (
    select
        days.economics_date,
        vps_instances.tenant_id,
        sum(
            case
                when overrides.smtp_ip_id is not null then overrides.monthly_cost_usd
                when smtp_ips.record_monthly_cost > 0 then smtp_ips.record_monthly_cost
                when smtp_ips.is_dedicated then day_constant.dedicated_ip_monthly_cost_usd
                else coalesce(smtp_ips.record_monthly_cost, 0)
            end
        ) as email_service_cost
    from smtp_ips
    cross join days
    inner join vps_instances
        on smtp_ips.vps_instance_id = vps_instances.vps_instance_id
    left join overrides
        on smtp_ips.smtp_ip_id = overrides.smtp_ip_id
    left join day_constant
        on days.economics_date = day_constant.economics_date and day_constant.recency_rank = 1
    where
        smtp_ips.ip_status in ('active', 'warmed', 'warming')
        and vps_instances.tenant_id is not null
    group by days.economics_date, vps_instances.tenant_id
),

-- payments collected for the current period, up to each day
tenant_payments as (
    select
        days.economics_date,
        subscriptions.tenant_id,
        sum(payments.payment_amount) as payments_collected
    from payments
    inner join subscriptions
        on
            payments.subscription_id = subscriptions.subscription_id
            and subscriptions.subscription_status = 'active'
    inner join days
        on
            payments.billing_period_start_date >= subscriptions.current_period_start_date
            and payments.billing_period_start_date <= days.economics_date
    where payments.payment_status = 'succeeded' and payments.currency_code = 'USD'
    group by days.economics_date, subscriptions.tenant_id
),

-- emails: per tenant and day first, then the 30-day window ending on each day
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

tenant_emails as (
    select
        days.economics_date,
        tenant_daily_emails.tenant_id,
        coalesce(sum(tenant_daily_emails.emails_sent), 0) as emails_sent
    from days
    inner join tenant_daily_emails
        on
            tenant_daily_emails.period_start_date
            between days.economics_date - 30 and days.economics_date
    group by days.economics_date, tenant_daily_emails.tenant_id
),

joined as (
    select
        tenant_revenue.tenant_id,
        tenant_revenue.economics_date,
        tenant_revenue.plan_name,
        tenant_revenue.revenue,
        coalesce(tenant_infrastructure.infrastructure_cost, 0) as infrastructure_cost,
        coalesce(tenant_email_service.email_service_cost, 0) as email_service_cost,
        coalesce(tenant_emails.emails_sent, 0) as emails_sent,
        coalesce(tenant_payments.payments_collected, 0) as payments_collected
    from tenant_revenue
    left join tenant_infrastructure
        on
            tenant_revenue.tenant_id = tenant_infrastructure.tenant_id
            and tenant_revenue.economics_date = tenant_infrastructure.economics_date
    left join tenant_email_service
        on
            tenant_revenue.tenant_id = tenant_email_service.tenant_id
            and tenant_revenue.economics_date = tenant_email_service.economics_date
    left join tenant_emails
        on
            tenant_revenue.tenant_id = tenant_emails.tenant_id
            and tenant_revenue.economics_date = tenant_emails.economics_date
    left join tenant_payments
        on
            tenant_revenue.tenant_id = tenant_payments.tenant_id
            and tenant_revenue.economics_date = tenant_payments.economics_date
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
