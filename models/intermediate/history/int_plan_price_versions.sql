-- Grain: one row per plan and captured version of its price, with the days it is valid for
-- ([valid_from_date, valid_to_date); see macro snapshot_validity).
with

versions as (
    {{ snapshot_validity(
        ref('snap_app__plans'), 'plan_id', ['plan_name', 'price_monthly', 'currency_code']
    ) }}
)

select * from versions
