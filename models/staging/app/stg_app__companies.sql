with

source as (
    select * from {{ source('app', 'companies') }}
),

renamed as (
    select
        -- ids
        id as tenant_id,

        -- attributes
        nullif(trim(name), '') as company_name,

        -- timestamps
        created_at,
        updated_at
    from source
)

select * from renamed
