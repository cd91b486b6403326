-- Grain: one row per price list row (plan code, billing cycle, effective date) and captured
-- version, with the days it is valid for (see macro snapshot_validity).
with

versions as (
    {{ snapshot_validity(
        ref('snap_vps_price_list'), 'price_key',
        ['plan_code', 'billing_cycle', 'effective_date', 'cycle_price_usd']
    ) }}
)

select * from versions
