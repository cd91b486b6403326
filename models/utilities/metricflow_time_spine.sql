-- Grain: one row per calendar day, 2020-01-01 to 2035-12-31: the time spine MetricFlow joins
-- metrics to (semantic models in models/marts/finance/_finance__semantic.yml).
with

days as (
    select cast(day_start as date) as date_day
    from generate_series(
        cast('2020-01-01' as date), cast('2035-12-31' as date), interval '1 day'
    ) as day_start
),

final as (
    select date_day
    from days
)

select * from final
