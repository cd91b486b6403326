-- The guide's "Cost Optimization Opportunities", unchanged but for ref().
SELECT 
    company_name,
    business_health_status,
    cost_efficiency_score,
    CASE 
        WHEN cost_efficiency_score < 50 THEN 'High Optimization Potential'
        WHEN cost_efficiency_score < 75 THEN 'Moderate Optimization Potential' 
        ELSE 'Well Optimized'
    END as optimization_category,
    (monthly_subscription_revenue * 2 - total_operational_cost) as optimization_opportunity
FROM {{ ref('executive_business_summary') }}
WHERE business_health_status != 'Excellent'
ORDER BY optimization_opportunity DESC;
