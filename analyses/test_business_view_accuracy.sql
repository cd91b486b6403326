-- The guide's "Test business view accuracy" (Migration Verification), unchanged but for ref().
SELECT 
    tenant_id,
    plan_name,
    monthly_subscription_revenue,
    total_infrastructure_cost,
    total_email_service_cost,
    total_monthly_cost,
    monthly_profit,
    business_health_status
FROM {{ ref('executive_business_summary') }} 
WHERE dashboard_date = CURRENT_DATE
LIMIT 5;
