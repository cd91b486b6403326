-- Grain: one row per VPS instance and SMTP IP the application knows, in any status, with the
-- key invoices name it by (macro resource_key): how an invoiced resource that costs nothing
-- in the model (not active, or unknown) is told apart, and whose it is.
-- A view: its one reader, the invoice reconciliation, reads it only for the months with an
-- invoice loaded, and PostgreSQL computes it then. As a table it was written on every
-- refresh, invoices or not (at 100,000 tenants the model and its test took 1.3-1.9 s of
-- dbt's node time, 0.6-0.9 s as a view).
{{ config(materialized='view') }}

with

vps_instances as (
    select * from {{ ref('stg_app__vps_instances') }}
),

smtp_ips as (
    select * from {{ ref('stg_app__smtp_ip_addresses') }}
),

resources as (
    select
        'vps' as resource_type,
        vps_instance_id as resource_id,
        {{ resource_key('hostname', 'vps_instance_id') }} as resource_key,
        tenant_id,
        vps_status as application_status
    from vps_instances

    union all

    select
        'smtp_ip' as resource_type,
        smtp_ips.smtp_ip_id as resource_id,
        {{ resource_key('host(smtp_ips.ip_address)', 'smtp_ips.smtp_ip_id') }} as resource_key,
        vps_instances.tenant_id,
        smtp_ips.ip_status as application_status
    from smtp_ips
    left join vps_instances
        on smtp_ips.vps_instance_id = vps_instances.vps_instance_id
)

select * from resources
