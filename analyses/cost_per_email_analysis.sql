-- The guide's "Cost Per Email Analysis", unchanged but for ref().
SELECT 
    company_name,
    plan_name,
    cost_per_email_delivered,
    total_monthly_cost,
    monthly_profit,
    business_efficiency_ratio,
    CASE 
        WHEN cost_per_email_delivered < 0.01 THEN 'Highly Efficient'
        WHEN cost_per_email_delivered < 0.02 THEN 'Efficient'
        WHEN cost_per_email_delivered < 0.05 THEN 'Moderate'
        ELSE 'Needs Optimization'
    END as efficiency_category
FROM {{ ref('business_cost_allocation') }}
WHERE cost_per_email_delivered > 0
ORDER BY cost_per_email_delivered ASC;
