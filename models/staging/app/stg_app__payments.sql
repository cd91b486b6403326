with

source as (
    select * from {{ source('app', 'payments') }}
),

renamed as (
    select
        -- ids
        id as payment_id,
        subscription_id,

        -- amounts
        cast(amount as numeric(14, 2)) as payment_amount,
        upper(trim(currency)) as currency_code,

        -- statuses
        lower(trim(status)) as payment_status,

        -- dates
        billing_period_start as billing_period_start_date,
        billing_period_end as billing_period_end_date,

        -- timestamps
        paid_at,
        created_at
    from source
)

select * from renamed
