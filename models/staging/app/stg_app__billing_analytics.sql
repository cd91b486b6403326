-- A view, not a table like the other staging models: copying the largest application table
-- would cost more than it saves; its filters are on plain date columns the planner can see.
{{ config(materialized='view') }}

with

source as (
    select * from {{ source('app', 'billing_analytics') }}
),

renamed as (
    select
        -- ids
        id as billing_analytics_id,
        subscription_id,

        -- dates
        period_start as period_start_date,
        period_end as period_end_date,

        -- counts
        emails_sent,
        emails_delivered,
        emails_bounced,

        -- timestamps
        created_at
    from source
)

select * from renamed
