-- Grain: one row per ledger month, cost category and currency.
with

source as (
    select * from {{ source('finance', 'ledger_entries') }}
),

renamed as (
    select
        to_char(ledger_month, 'YYYY-MM') || ':' || category || ':' || currency as ledger_entry_key,
        ledger_month as billing_month,
        category,

        amount,
        currency as currency_code,

        line_number,
        load_id
    from source
)

select * from renamed
