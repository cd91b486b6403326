-- Grain: one row per validity interval [valid_from_date, valid_to_date) of the dedicated-IP
-- monthly cost constant (seeds/cost_assumptions.csv): the row in force over those days
-- (latest effective_date on or before the day, as captured for that day). Covers all time:
-- NULL before the first effective date. See macro effective_dated_intervals.
with

constant_intervals as (
    {{ effective_dated_intervals(
        ref('int_cost_assumption_versions'), [], ['dedicated_ip_monthly_cost_usd']
    ) }}
),

final as (
    select
        valid_from_date,
        valid_to_date,
        dedicated_ip_monthly_cost_usd,
        effective_date as constant_effective_date
    from constant_intervals
)

select * from final
