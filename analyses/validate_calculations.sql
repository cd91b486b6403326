-- The guide's "Validate calculations" (Migration Verification), unchanged but for ref().
-- Every row must read PASS, PASS.
WITH cost_validation AS (
    SELECT 
        tenant_id,
        (total_infrastructure_cost + total_email_service_cost) as calculated_total_cost,
        (monthly_subscription_revenue - (total_infrastructure_cost + total_email_service_cost)) as calculated_profit
    FROM {{ ref('executive_business_summary') }}
    WHERE dashboard_date = CURRENT_DATE
)
SELECT 
    evs.tenant_id,
    evs.total_operational_cost,
    cv.calculated_total_cost,
    CASE WHEN evs.total_operational_cost = cv.calculated_total_cost THEN 'PASS' ELSE 'FAIL' END as cost_validation,
    evs.monthly_profit,
    cv.calculated_profit,
    CASE WHEN ABS(evs.monthly_profit - cv.calculated_profit) < 0.01 THEN 'PASS' ELSE 'FAIL' END as profit_validation
FROM {{ ref('executive_business_summary') }} evs
JOIN cost_validation cv ON evs.tenant_id = cv.tenant_id
WHERE evs.dashboard_date = CURRENT_DATE;
