-- Grain: one row per tenant with at least one payment collected for a current period.
-- Collected: status succeeded, in USD, for one of the tenant's active subscriptions, with a
-- billing period that starts on or after that subscription's current period start and not
-- after the as-of date. Failed, pending and refunded payments are not revenue.
with

payments as (
    select * from {{ ref('stg_app__payments') }}
),

subscriptions as (
    select * from {{ ref('stg_app__subscriptions') }}
),

active_subscriptions as (
    select
        subscription_id,
        tenant_id,
        current_period_start_date
    from subscriptions
    where subscription_status = 'active'
),

collected as (
    select
        active_subscriptions.tenant_id,
        payments.payment_amount
    from payments
    inner join active_subscriptions
        on payments.subscription_id = active_subscriptions.subscription_id
    where
        payments.payment_status = 'succeeded'
        and payments.currency_code = 'USD'
        and payments.billing_period_start_date >= active_subscriptions.current_period_start_date
        and payments.billing_period_start_date <= {{ as_of_date() }}
),

final as (
    select
        tenant_id,
        count(*) as collected_payment_count,
        sum(payment_amount) as payments_collected
    from collected
    group by tenant_id
)

select * from final
