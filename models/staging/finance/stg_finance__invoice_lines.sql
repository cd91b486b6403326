-- Grain: one row per invoice line (provider, invoice id, line number).
-- The billing month is the month the billing period starts in; resource_key is how the
-- line is matched to the application's resources (a lowercased hostname, an IP address).
with

source as (
    select * from {{ source('finance', 'invoice_lines') }}
),

renamed as (
    select
        provider || ':' || invoice_id || ':' || line_number as invoice_line_key,
        provider,
        invoice_id,
        line_number,

        invoice_date,
        period_start as period_start_date,
        period_end as period_end_date,
        cast(date_trunc('month', period_start) as date) as billing_month,

        resource_type,
        resource_ref,
        {{ resource_key('resource_ref') }} as resource_key,
        description,

        amount,
        currency as currency_code,

        load_id
    from source
)

select * from renamed
