-- The contract between the marts and the daily history: the executive summary and cost
-- allocation are the fact's as-of day (they are built from it), column by column. Guards
-- against a mart that filters, joins or renames differently. Returns the tenants where they
-- differ (or exist on one side).
with

executive as (
    select * from {{ ref('executive_business_summary') }}
),

allocation as (
    select * from {{ ref('business_cost_allocation') }}
),

daily as (
    select * from {{ ref('fct_tenant_economics_daily') }}
    where economics_date = {{ as_of_date() }}
),

marts as (
    select
        executive.tenant_id,
        executive.dashboard_date as economics_date,
        executive.plan_name,
        executive.monthly_subscription_revenue,
        executive.infrastructure_costs as infrastructure_cost,
        executive.email_service_costs as email_service_cost,
        executive.total_monthly_cost,
        executive.monthly_profit,
        executive.gross_margin_ratio,
        executive.cost_efficiency_score,
        executive.business_health_status,
        allocation.emails_sent_last_30_days,
        allocation.cost_per_email_delivered as cost_per_email,
        allocation.payments_collected,
        allocation.business_efficiency_ratio
    from executive
    inner join allocation
        on executive.tenant_id = allocation.tenant_id
),

fact as (
    select
        tenant_id,
        economics_date,
        plan_name,
        monthly_subscription_revenue,
        infrastructure_cost,
        email_service_cost,
        total_monthly_cost,
        monthly_profit,
        gross_margin_ratio,
        cost_efficiency_score,
        business_health_status,
        emails_sent_last_30_days,
        cost_per_email,
        payments_collected,
        business_efficiency_ratio
    from daily
),

only_in_marts as (
    select * from marts
    except
    select * from fact
),

only_in_fact as (
    select * from fact
    except
    select * from marts
),

final as (
    select
        'executive_business_summary / business_cost_allocation' as found_in,
        tenant_id,
        economics_date
    from only_in_marts

    union all

    select
        'fct_tenant_economics_daily' as found_in,
        tenant_id,
        economics_date
    from only_in_fact
)

select * from final
