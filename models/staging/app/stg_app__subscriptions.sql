with

source as (
    select * from {{ source('app', 'subscriptions') }}
),

renamed as (
    select
        -- ids
        id as subscription_id,
        tenant_id,
        plan_id,

        -- statuses
        lower(trim(status)) as subscription_status,

        -- dates
        current_period_start as current_period_start_date,
        current_period_end as current_period_end_date,

        -- timestamps
        created_at,
        updated_at
    from source
)

select * from renamed
