-- The contract between the marts and the daily history: the executive summary and cost
-- allocation are the fact's as-of day (they are built from it), column by column. Guards
-- against a mart that filters, joins or renames differently. Returns the tenants where they
-- differ or exist on one side only: one join of the two sides on the tenant, each side read
-- once (two EXCEPTs read each twice and took twice as long).
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

final as (
    select
        coalesce(marts.tenant_id, fact.tenant_id) as tenant_id,
        coalesce(marts.economics_date, fact.economics_date) as economics_date,
        case
            when fact.tenant_id is null
                then 'only in executive_business_summary / business_cost_allocation'
            when marts.tenant_id is null then 'only in fct_tenant_economics_daily'
            else 'a column differs'
        end as found
    from marts
    full outer join fact
        on marts.tenant_id = fact.tenant_id
    where
        marts.tenant_id is null
        or fact.tenant_id is null
        or (
            marts.economics_date,
            marts.plan_name,
            marts.monthly_subscription_revenue,
            marts.infrastructure_cost,
            marts.email_service_cost,
            marts.total_monthly_cost,
            marts.monthly_profit,
            marts.gross_margin_ratio,
            marts.cost_efficiency_score,
            marts.business_health_status,
            marts.emails_sent_last_30_days,
            marts.cost_per_email,
            marts.payments_collected,
            marts.business_efficiency_ratio
        ) is distinct from (
            fact.economics_date,
            fact.plan_name,
            fact.monthly_subscription_revenue,
            fact.infrastructure_cost,
            fact.email_service_cost,
            fact.total_monthly_cost,
            fact.monthly_profit,
            fact.gross_margin_ratio,
            fact.cost_efficiency_score,
            fact.business_health_status,
            fact.emails_sent_last_30_days,
            fact.cost_per_email,
            fact.payments_collected,
            fact.business_efficiency_ratio
        )
)

select * from final
