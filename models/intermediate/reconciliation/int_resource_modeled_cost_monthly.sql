-- Grain: one row per billing month and resource (resource type and key) to reconcile: every
-- invoiced resource, and every resource with a modeled cost above 0 at the month's end.
-- Modeled cost: the resource's monthly cost from the cost intervals, by the marts' rules, on
-- the reconciliation date (the last day of its billing period; the month's last day when no
-- line charges it). Statuses and record values are the application's at run time. NULL
-- cost and 0 resources when the application holds no cost-bearing resource by that key.
with

months as (
    select * from {{ ref('int_invoice_months') }}
),

charges as (
    select * from {{ ref('int_invoice_resource_charges') }}
),

resource_costs as (
    select * from {{ ref('int_resource_cost_intervals') }}
),

costed_at_month_end as (
    select
        months.billing_month,
        resource_costs.resource_type,
        resource_costs.resource_key,
        months.month_end_date
    from months
    inner join resource_costs
        on {{ interval_holds_on('months.month_end_date', 'resource_costs') }}
    where resource_costs.monthly_cost > 0
    group by
        months.billing_month, resource_costs.resource_type, resource_costs.resource_key,
        months.month_end_date
),

to_reconcile as (
    select
        coalesce(charges.billing_month, costed_at_month_end.billing_month) as billing_month,
        coalesce(charges.resource_type, costed_at_month_end.resource_type) as resource_type,
        coalesce(charges.resource_key, costed_at_month_end.resource_key) as resource_key,
        coalesce(charges.reconciliation_date, costed_at_month_end.month_end_date)
            as reconciliation_date
    from charges
    full outer join costed_at_month_end
        on
            charges.billing_month = costed_at_month_end.billing_month
            and charges.resource_type = costed_at_month_end.resource_type
            and charges.resource_key = costed_at_month_end.resource_key
),

final as (
    select
        to_reconcile.billing_month,
        to_reconcile.resource_type,
        to_reconcile.resource_key,
        to_reconcile.reconciliation_date,
        count(resource_costs.resource_id) as modeled_resource_count,
        sum(resource_costs.monthly_cost) as modeled_cost,
        min(resource_costs.resource_ref) as resource_ref,
        -- the tenant when every resource under the key belongs to one
        {{ only_tenant('resource_costs.tenant_id', 'resource_costs.resource_id') }} as tenant_id,
        string_agg(distinct resource_costs.cost_source, ', ') as cost_sources
    from to_reconcile
    left join resource_costs
        on
            to_reconcile.resource_type = resource_costs.resource_type
            and to_reconcile.resource_key = resource_costs.resource_key
            and {{ interval_holds_on('to_reconcile.reconciliation_date', 'resource_costs') }}
    group by
        to_reconcile.billing_month, to_reconcile.resource_type, to_reconcile.resource_key,
        to_reconcile.reconciliation_date
)

select * from final
