-- Grain: one row per billing month and resource (resource type and key) to reconcile: every
-- invoiced resource, and every resource with a modeled cost above 0 at the month's end.
-- Modeled cost: the resource's monthly cost from the cost intervals, by the marts' rules, on
-- the reconciliation date (the last day of its billing period; the month's last day when no
-- line charges it). Statuses and record values are the application's at run time. NULL
-- cost and 0 resources when the application holds no cost-bearing resource by that key.
-- Each of the two kinds is summed in one pass over the intervals that hold on its day: the
-- month ends for every key (kept when one of its resources costs more than 0 and no line
-- charges it), and the invoiced keys on their own day.
with

months as (
    select * from {{ ref('int_invoice_months') }}
),

charges as (
    select * from {{ ref('int_invoice_resource_charges') }}
),

-- the same intervals, once for each kind: a CTE read twice would be written out in full
month_end_costs as (
    select * from {{ ref('int_resource_cost_intervals') }}
),

charged_costs as (
    select * from {{ ref('int_resource_cost_intervals') }}
),

at_month_end as (
    select
        months.billing_month,
        month_end_costs.resource_type,
        month_end_costs.resource_key,
        months.month_end_date as reconciliation_date,
        count(month_end_costs.resource_id) as modeled_resource_count,
        sum(month_end_costs.monthly_cost) as modeled_cost,
        min(month_end_costs.resource_ref) as resource_ref,
        {{ only_tenant('month_end_costs.tenant_id', 'month_end_costs.resource_id') }}
            as tenant_id,
        string_agg(distinct month_end_costs.cost_source, ', ') as cost_sources,
        coalesce(bool_or(month_end_costs.monthly_cost > 0), false) as has_cost
    from months
    inner join month_end_costs
        on {{ interval_holds_on('months.month_end_date', 'month_end_costs') }}
    group by
        months.billing_month, month_end_costs.resource_type, month_end_costs.resource_key,
        months.month_end_date
),

at_charge_date as (
    select
        charges.billing_month,
        charges.resource_type,
        charges.resource_key,
        charges.reconciliation_date,
        count(charged_costs.resource_id) as modeled_resource_count,
        sum(charged_costs.monthly_cost) as modeled_cost,
        min(charged_costs.resource_ref) as resource_ref,
        {{ only_tenant('charged_costs.tenant_id', 'charged_costs.resource_id') }} as tenant_id,
        string_agg(distinct charged_costs.cost_source, ', ') as cost_sources
    from charges
    left join charged_costs
        on
            charges.resource_type = charged_costs.resource_type
            and charges.resource_key = charged_costs.resource_key
            and {{ interval_holds_on('charges.reconciliation_date', 'charged_costs') }}
    group by
        charges.billing_month, charges.resource_type, charges.resource_key,
        charges.reconciliation_date
),

final as (
    select
        billing_month,
        resource_type,
        resource_key,
        reconciliation_date,
        modeled_resource_count,
        modeled_cost,
        resource_ref,
        tenant_id,
        cost_sources
    from at_charge_date
    union all
    select
        at_month_end.billing_month,
        at_month_end.resource_type,
        at_month_end.resource_key,
        at_month_end.reconciliation_date,
        at_month_end.modeled_resource_count,
        at_month_end.modeled_cost,
        at_month_end.resource_ref,
        at_month_end.tenant_id,
        at_month_end.cost_sources
    from at_month_end
    left join charges
        on
            at_month_end.billing_month = charges.billing_month
            and at_month_end.resource_type = charges.resource_type
            and at_month_end.resource_key = charges.resource_key
    where at_month_end.has_cost and charges.billing_month is null
)

select * from final
