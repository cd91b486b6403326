with

source as (
    select * from {{ source('app', 'vps_instances') }}
),

renamed as (
    select
        -- ids
        id as vps_instance_id,
        tenant_id,

        -- attributes
        hostname,
        lower(trim(plan_code)) as plan_code,
        lower(trim(billing_cycle)) as billing_cycle,

        -- statuses
        lower(trim(status)) as vps_status,

        -- amounts
        cast(approximate_cost as numeric(12, 2)) as record_monthly_cost,

        -- timestamps
        created_at,
        updated_at
    from source
)

select * from renamed
