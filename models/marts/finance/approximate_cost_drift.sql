-- Grain: one row per cost-bearing resource, as of var as_of_date, whose record
-- approximate_cost (above 0) differs from the current reference price by more than var
-- drift_tolerance: the price list's monthly price for a VPS, the dedicated-IP constant for a
-- dedicated IP without a Finance override. Finance's re-sync list.
{{ config(grants=finance_grants(), meta={'tenant_scoped': false}) }}

with

resource_costs as (
    select * from {{ ref('int_resource_cost_intervals') }}
),

on_as_of_date as (
    select
        resource_type,
        resource_id,
        resource_ref,
        tenant_id,
        record_monthly_cost,
        reference_monthly_cost,
        reference_effective_date
    from resource_costs
    where
        {{ interval_holds_on() }}
        and record_monthly_cost > 0
        and reference_monthly_cost is not null
),

final as (
    select
        resource_type,
        resource_id,
        resource_ref,
        tenant_id,
        cast(record_monthly_cost as numeric(14, 2)) as record_monthly_cost,
        cast(reference_monthly_cost as numeric(14, 2)) as reference_monthly_cost,
        reference_effective_date,
        cast(record_monthly_cost - reference_monthly_cost as numeric(14, 2)) as drift,
        cast(
            case
                when reference_monthly_cost <> 0
                    then round(
                        (record_monthly_cost - reference_monthly_cost)
                        / reference_monthly_cost * 100,
                        2
                    )
            end as numeric(14, 2)
        ) as drift_pct,
        {{ as_of_date() }} as as_of_date
    from on_as_of_date
    where abs(record_monthly_cost - reference_monthly_cost) > {{ var('drift_tolerance') }}
)

select * from final
