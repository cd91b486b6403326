-- Ephemeral, not a table like the other staging models: copying the largest application
-- table would cost more than it saves, and its filters are on plain date columns the planner
-- can see. Not a view either: a view is a dependency on the application's table, and the
-- application's own migrations (`alter table billing_analytics drop column ...`) would fail.
{{ config(materialized='ephemeral') }}

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
