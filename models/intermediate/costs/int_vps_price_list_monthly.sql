-- Grain: one row per provider plan code and billing cycle: the price effective on the as-of
-- date, normalised to one month (cycle price / months in the cycle, to the cent).
with

price_list as (
    select * from {{ ref('vps_price_list') }}
),

billing_cycles as (
    select * from {{ ref('billing_cycles') }}
),

effective_prices as (
    select
        lower(trim(plan_code)) as plan_code,
        lower(trim(billing_cycle)) as billing_cycle,
        cycle_price_usd,
        effective_date,
        row_number() over (
            partition by lower(trim(plan_code)), lower(trim(billing_cycle))
            order by effective_date desc
        ) as recency_rank
    from price_list
    where effective_date <= {{ as_of_date() }}
),

final as (
    select
        effective_prices.plan_code,
        effective_prices.billing_cycle,
        effective_prices.cycle_price_usd,
        billing_cycles.months_per_cycle,
        round(effective_prices.cycle_price_usd / billing_cycles.months_per_cycle, 2)
            as monthly_price_usd,
        effective_prices.effective_date as price_effective_date
    from effective_prices
    inner join billing_cycles
        on effective_prices.billing_cycle = lower(trim(billing_cycles.billing_cycle))
    where effective_prices.recency_rank = 1
)

select * from final
