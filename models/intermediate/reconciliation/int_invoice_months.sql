-- Grain: one row per billing month with at least one provider invoice loaded: the months
-- the reconciliation covers (a resource is only "modeled but not invoiced" in these).
with

invoice_lines as (
    select * from {{ ref('stg_finance__invoice_lines') }}
),

final as (
    select
        billing_month,
        cast(billing_month + interval '1 month' - interval '1 day' as date) as month_end_date,
        count(distinct provider) as provider_count,
        count(distinct provider || ':' || invoice_id) as invoice_count,
        count(*) as invoice_line_count
    from invoice_lines
    group by billing_month
)

select * from final
