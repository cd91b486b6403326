-- The guide's "Monthly Cost Analysis by Tenant", unchanged but for ref().
SELECT 
    plan_name,
    COUNT(*) as tenant_count,
    AVG(total_infrastructure_cost) as avg_infrastructure_cost,
    AVG(total_email_service_cost) as avg_email_service_cost,
    AVG(total_monthly_cost) as avg_total_cost,
    AVG(monthly_profit) as avg_monthly_profit,
    AVG(business_efficiency_ratio) as avg_efficiency_ratio
FROM {{ ref('business_cost_allocation') }}
GROUP BY plan_name
ORDER BY avg_efficiency_ratio DESC;
