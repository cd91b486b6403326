-- Grain: one row per provider plan code, billing cycle and validity interval
-- [valid_from_date, valid_to_date): the price list row in force over those days (latest
-- effective_date on or before the day, as captured for that day), normalised to one month
-- (cycle price / months in the cycle, to the cent). Covers all time: before a plan's first
-- effective date its price is NULL. See macro effective_dated_intervals.
with

price_intervals as (
    {{ effective_dated_intervals(
        ref('int_vps_price_list_versions'), ['plan_code', 'billing_cycle'], ['cycle_price_usd']
    ) }}
),

billing_cycles as (
    select * from {{ ref('billing_cycles') }}
),

final as (
    select
        price_intervals.plan_code,
        price_intervals.billing_cycle,
        price_intervals.valid_from_date,
        price_intervals.valid_to_date,
        price_intervals.cycle_price_usd,
        billing_cycles.months_per_cycle,
        round(price_intervals.cycle_price_usd / billing_cycles.months_per_cycle, 2)
            as monthly_price_usd,
        price_intervals.effective_date as price_effective_date
    from price_intervals
    inner join billing_cycles
        on price_intervals.billing_cycle = lower(trim(billing_cycles.billing_cycle))
)

select * from final
