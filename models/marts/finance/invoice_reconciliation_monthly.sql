-- Grain: one row per billing month (with an invoice or a ledger row loaded) and cost category
-- (vps, smtp_ip, shared_database, other).
-- Modeled, invoiced (USD lines) and ledger (USD) totals; the share of invoiced spend matched
-- to a modeled resource; unexplained variance = ledger - invoiced, what Finance booked that
-- no loaded invoice line accounts for (shared_database is NileDB overhead: shown, never
-- modeled or allocated, so not reconciled to invoices). Non-USD amounts are counted apart.
{{ config(grants=finance_grants(), meta={'tenant_scoped': false}) }}

with

by_resource as (
    select * from {{ ref('invoice_reconciliation_by_resource') }}
),

invoice_lines as (
    select * from {{ ref('stg_finance__invoice_lines') }}
),

ledger as (
    select * from {{ ref('stg_finance__ledger_entries') }}
),

categories as (
    select category
    from (values ('vps'), ('smtp_ip'), ('shared_database'), ('other')) as listed (category)
),

months as (
    select billing_month from invoice_lines
    union
    select billing_month from ledger
),

resource_totals as (
    select
        billing_month,
        resource_type as category,
        sum(modeled_cost) as modeled_total,
        sum(invoiced_amount) filter (
            where reconciliation_status in ('matched', 'amount_mismatch')
        ) as matched_invoiced,
        count(*) filter (where reconciliation_status = 'matched') as matched_count,
        count(*) filter (where reconciliation_status = 'amount_mismatch') as amount_mismatch_count,
        count(*) filter (where reconciliation_status = 'invoiced_not_modeled')
            as invoiced_not_modeled_count,
        count(*) filter (where reconciliation_status = 'modeled_not_invoiced')
            as modeled_not_invoiced_count
    from by_resource
    group by billing_month, resource_type
),

invoice_totals as (
    select
        billing_month,
        resource_type as category,
        coalesce(sum(amount) filter (where currency_code = 'USD'), 0.00) as invoiced_total,
        count(*) filter (where currency_code <> 'USD') as non_usd_invoice_lines
    from invoice_lines
    group by billing_month, resource_type
),

ledger_totals as (
    select
        billing_month,
        category,
        sum(amount) filter (where currency_code = 'USD') as ledger_total,
        count(*) filter (where currency_code <> 'USD') as non_usd_ledger_rows
    from ledger
    group by billing_month, category
),

joined as (
    select
        months.billing_month,
        categories.category,
        resource_totals.modeled_total,
        coalesce(invoice_totals.invoiced_total, 0.00) as invoiced_total,
        ledger_totals.ledger_total,
        coalesce(resource_totals.matched_invoiced, 0.00) as matched_invoiced,
        coalesce(resource_totals.matched_count, 0) as matched_count,
        coalesce(resource_totals.amount_mismatch_count, 0) as amount_mismatch_count,
        coalesce(resource_totals.invoiced_not_modeled_count, 0) as invoiced_not_modeled_count,
        coalesce(resource_totals.modeled_not_invoiced_count, 0) as modeled_not_invoiced_count,
        coalesce(invoice_totals.non_usd_invoice_lines, 0) as non_usd_invoice_lines,
        coalesce(ledger_totals.non_usd_ledger_rows, 0) as non_usd_ledger_rows
    from months
    cross join categories
    left join resource_totals
        on
            months.billing_month = resource_totals.billing_month
            and categories.category = resource_totals.category
    left join invoice_totals
        on
            months.billing_month = invoice_totals.billing_month
            and categories.category = invoice_totals.category
    left join ledger_totals
        on
            months.billing_month = ledger_totals.billing_month
            and categories.category = ledger_totals.category
),

final as (
    select
        billing_month,
        category,
        cast(
            case when category in ('vps', 'smtp_ip') then coalesce(modeled_total, 0) end
            as numeric(14, 2)
        ) as modeled_total,
        cast(invoiced_total as numeric(14, 2)) as invoiced_total,
        cast(ledger_total as numeric(14, 2)) as ledger_total,
        cast(
            case
                when category in ('vps', 'smtp_ip') then invoiced_total - coalesce(modeled_total, 0)
            end
            as numeric(14, 2)
        ) as invoice_variance,
        cast(
            case
                when category in ('vps', 'smtp_ip') and invoiced_total <> 0
                    then round(matched_invoiced / invoiced_total, 4)
            end as numeric(8, 4)
        ) as matched_invoiced_share,
        cast(
            case when category <> 'shared_database' then ledger_total - invoiced_total end
            as numeric(14, 2)
        ) as unexplained_variance,
        matched_count,
        amount_mismatch_count,
        invoiced_not_modeled_count,
        modeled_not_invoiced_count,
        non_usd_invoice_lines,
        non_usd_ledger_rows
    from joined
)

select * from final
