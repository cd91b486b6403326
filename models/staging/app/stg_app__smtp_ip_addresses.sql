with

source as (
    select * from {{ source('app', 'smtp_ip_addresses') }}
),

renamed as (
    select
        -- ids
        id as smtp_ip_id,
        vps_instance_id,

        -- attributes
        ip_address,
        coalesce(is_dedicated, true) as is_dedicated,

        -- statuses
        lower(trim(status)) as ip_status,

        -- amounts
        cast(approximate_cost as numeric(12, 2)) as record_monthly_cost,

        -- timestamps
        created_at,
        updated_at
    from source
)

select * from renamed
