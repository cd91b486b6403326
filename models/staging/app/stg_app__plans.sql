with

source as (
    select * from {{ source('app', 'plans') }}
),

renamed as (
    select
        -- ids
        id as plan_id,

        -- attributes
        nullif(trim(name), '') as plan_name,

        -- amounts
        cast(price_monthly as numeric(12, 2)) as price_monthly,
        upper(trim(currency)) as currency_code,

        -- timestamps
        created_at,
        updated_at
    from source
)

select * from renamed
