-- Grain: one row per cost assumption (effective date) and captured version, with the days it
-- is valid for (see macro snapshot_validity).
with

versions as (
    {{ snapshot_validity(
        ref('snap_cost_assumptions'), 'effective_date', ['dedicated_ip_monthly_cost_usd']
    ) }}
)

select * from versions
