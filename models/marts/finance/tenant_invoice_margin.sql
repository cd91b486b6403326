-- Grain: one row per tenant and billing month with an invoice loaded, for tenants with an
-- active subscription at the month's end or a reconciled resource that month.
-- Margin on invoice-backed cost (the tenant's resources at their invoiced amounts) beside
-- margin on modeled cost (the same resources at their modeled cost), against the tenant's
-- monthly subscription revenue at the month's last day (plan prices captured for that day).
{{ config(grants=finance_grants(), meta={'tenant_scoped': false}) }}

with

by_resource as (
    select * from {{ ref('invoice_reconciliation_by_resource') }}
),

months as (
    select * from {{ ref('int_invoice_months') }}
),

revenue_intervals as (
    select * from {{ ref('int_subscription_revenue_intervals') }}
),

tenant_revenue as (
    select
        months.billing_month,
        revenue_intervals.tenant_id,
        sum(revenue_intervals.monthly_revenue_usd) as monthly_subscription_revenue
    from months
    inner join revenue_intervals
        on {{ interval_holds_on('months.month_end_date', 'revenue_intervals') }}
    group by months.billing_month, revenue_intervals.tenant_id
),

tenant_costs as (
    select
        billing_month,
        tenant_id,
        count(*) as reconciled_resource_count,
        sum(modeled_cost) as modeled_cost,
        sum(invoiced_amount) as invoice_backed_cost
    from by_resource
    where tenant_id is not null
    group by billing_month, tenant_id
),

joined as (
    select
        coalesce(tenant_revenue.tenant_id, tenant_costs.tenant_id) as tenant_id,
        coalesce(tenant_revenue.billing_month, tenant_costs.billing_month) as billing_month,
        coalesce(tenant_revenue.monthly_subscription_revenue, 0.00) as revenue,
        coalesce(tenant_costs.reconciled_resource_count, 0) as reconciled_resource_count,
        coalesce(tenant_costs.modeled_cost, 0.00) as modeled_cost,
        coalesce(tenant_costs.invoice_backed_cost, 0.00) as invoice_backed_cost
    from tenant_revenue
    full outer join tenant_costs
        on
            tenant_revenue.tenant_id = tenant_costs.tenant_id
            and tenant_revenue.billing_month = tenant_costs.billing_month
),

final as (
    select
        tenant_id,
        billing_month,
        cast(revenue as numeric(14, 2)) as monthly_subscription_revenue,
        reconciled_resource_count,
        cast(modeled_cost as numeric(14, 2)) as modeled_cost,
        cast(invoice_backed_cost as numeric(14, 2)) as invoice_backed_cost,
        cast(invoice_backed_cost - modeled_cost as numeric(14, 2)) as cost_difference,
        cast(revenue - modeled_cost as numeric(14, 2)) as modeled_margin,
        cast(revenue - invoice_backed_cost as numeric(14, 2)) as invoice_margin,
        cast({{ safe_ratio('revenue', 'modeled_cost') }} as numeric(14, 2))
            as modeled_gross_margin_ratio,
        cast({{ safe_ratio('revenue', 'invoice_backed_cost') }} as numeric(14, 2))
            as invoice_gross_margin_ratio
    from joined
)

select * from final
