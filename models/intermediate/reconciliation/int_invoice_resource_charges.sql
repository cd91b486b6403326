-- Grain: one row per billing month and invoiced resource (resource type and key) of the
-- vps and smtp_ip lines: the sum of the resource's lines for the month's billing periods
-- (a promotion credit is a negative line), in USD; non-USD lines are summed apart and never
-- converted. The reconciliation date is the last day of the resource's billing period.
with

invoice_lines as (
    select * from {{ ref('stg_finance__invoice_lines') }}
),

final as (
    select
        billing_month,
        resource_type,
        resource_key,
        min(resource_ref) as resource_ref,
        max(period_end_date) as reconciliation_date,
        count(*) as invoice_line_count,
        count(*) filter (where currency_code = 'USD') as usd_line_count,
        string_agg(distinct provider, ', ') as providers,
        coalesce(sum(amount) filter (where currency_code = 'USD'), 0.00) as invoiced_amount,
        sum(amount) filter (where currency_code <> 'USD') as non_usd_amount,
        string_agg(distinct currency_code, ', ') filter (where currency_code <> 'USD')
            as non_usd_currencies
    from invoice_lines
    where resource_type in ('vps', 'smtp_ip')
    group by billing_month, resource_type, resource_key
)

select * from final
