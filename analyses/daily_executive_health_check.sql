-- The guide's "Daily Executive Health Check", unchanged but for ref().
-- dashboard_date is the as-of date: on a backfilled build use that date instead of CURRENT_DATE.
SELECT 
    company_name,
    plan_name,
    business_health_status,
    cost_efficiency_score,
    gross_margin_ratio,
    monthly_subscription_revenue,
    total_operational_cost,
    (monthly_subscription_revenue - total_operational_cost) as monthly_profit
FROM {{ ref('executive_business_summary') }} 
WHERE dashboard_date = CURRENT_DATE
ORDER BY cost_efficiency_score DESC;
