-- Grain: one row per billing month and resource (resource type and reference) to reconcile:
-- every VPS or SMTP IP an invoice line charges that month, and every resource with a
-- modeled cost above 0 at the end of a month with an invoice loaded.
-- Status, first that applies: invoiced_not_modeled (the application holds no cost-bearing
-- resource by that reference: unknown, or not active: a possible leak), modeled_not_invoiced
-- (no line charges it), non_usd_not_compared (only non-USD lines: reported, not converted),
-- matched (|invoiced - modeled| within var reconciliation_tolerance), amount_mismatch.
-- Finance's data: analysts and administrators only.
{{ config(grants=finance_grants(), meta={'tenant_scoped': false}) }}

with

modeled as (
    select * from {{ ref('int_resource_modeled_cost_monthly') }}
),

charges as (
    select * from {{ ref('int_invoice_resource_charges') }}
),

known_resources as (
    select * from {{ ref('int_application_resources') }}
),

known_by_key as (
    select
        resource_type,
        resource_key,
        string_agg(distinct application_status, ', ') as application_statuses,
        {{ only_tenant('tenant_id') }} as tenant_id
    from known_resources
    group by resource_type, resource_key
),

joined as (
    select
        modeled.billing_month,
        modeled.resource_type,
        coalesce(charges.resource_ref, modeled.resource_ref, modeled.resource_key) as resource_ref,
        modeled.resource_key,
        coalesce(modeled.tenant_id, known_by_key.tenant_id) as tenant_id,
        known_by_key.application_statuses,
        modeled.reconciliation_date,
        modeled.modeled_resource_count,
        modeled.cost_sources,
        coalesce(modeled.modeled_cost, 0.00) as modeled_cost,
        coalesce(charges.invoiced_amount, 0.00) as invoiced_amount,
        coalesce(charges.invoice_line_count, 0) as invoice_line_count,
        coalesce(charges.usd_line_count, 0) as usd_line_count,
        charges.providers,
        charges.non_usd_amount,
        charges.non_usd_currencies
    from modeled
    left join charges
        on
            modeled.billing_month = charges.billing_month
            and modeled.resource_type = charges.resource_type
            and modeled.resource_key = charges.resource_key
    left join known_by_key
        on
            modeled.resource_type = known_by_key.resource_type
            and modeled.resource_key = known_by_key.resource_key
),

final as (
    select
        billing_month,
        resource_type,
        resource_ref,
        tenant_id,
        application_statuses,
        reconciliation_date,
        modeled_resource_count,
        cost_sources,
        cast(modeled_cost as numeric(14, 2)) as modeled_cost,
        cast(invoiced_amount as numeric(14, 2)) as invoiced_amount,
        cast(invoiced_amount - modeled_cost as numeric(14, 2)) as variance,
        cast(
            case
                when modeled_cost <> 0
                    then round((invoiced_amount - modeled_cost) / modeled_cost * 100, 2)
            end as numeric(14, 2)
        ) as variance_pct,
        invoice_line_count,
        providers,
        cast(non_usd_amount as numeric(14, 2)) as non_usd_amount,
        non_usd_currencies,
        case
            when modeled_resource_count = 0 then 'invoiced_not_modeled'
            when invoice_line_count = 0 then 'modeled_not_invoiced'
            when usd_line_count = 0 then 'non_usd_not_compared'
            when abs(invoiced_amount - modeled_cost) <= {{ var('reconciliation_tolerance') }}
                then 'matched'
            else 'amount_mismatch'
        end as reconciliation_status
    from joined
)

select * from final
