"""The two marts written by hand over the application tables, in two forms from one text.

- `STAGES` + `MART_SELECTS`: the limit dbt is measured against, the best SQL a skilled
  engineer would write by hand for the same marts: one `create table as` per aggregate
  (prices, VPS and IP cost per tenant, active subscriptions, emails, payments), each
  analyzed, then the marts from those tables (`benchmarks.bench.Bench.limit`).
- `EXECUTIVE` / `ALLOCATION`: the same stages as CTEs of one statement per mart, for the
  guide's live views (its join bugs fixed so the numbers match).

The benchmark checks that both give exactly the marts' rows before it reports any timing.
Stages name earlier stages unqualified: the limit runs them with search_path set to its own
schema, the views as CTEs.
"""

from __future__ import annotations

from datetime import date

from psycopg import sql

# {app} application schema, {ref} schema of the seeds, {as_of} the as-of date literal
_COMMON_STAGES = [
    (
        "price",
        """
    select lower(trim(p.plan_code)) as plan_code, lower(trim(p.billing_cycle)) as billing_cycle,
           round(p.cycle_price_usd / c.months_per_cycle, 2) as monthly_price,
           row_number() over (partition by lower(trim(p.plan_code)), lower(trim(p.billing_cycle))
                              order by p.effective_date desc) as rank_
    from {ref}.vps_price_list as p
    join {ref}.billing_cycles as c on lower(trim(p.billing_cycle)) = lower(trim(c.billing_cycle))
    where p.effective_date <= {as_of}
""",
    ),
    (
        "ip_constant",
        """
    select dedicated_ip_monthly_cost_usd as cost from {ref}.cost_assumptions
    where effective_date <= {as_of} order by effective_date desc limit 1
""",
    ),
    (
        "vps",
        """
    select v.id, v.tenant_id,
           case when v.approximate_cost > 0 then v.approximate_cost else price.monthly_price end
               as cost
    from {app}.vps_instances as v
    left join price on price.plan_code = lower(trim(v.plan_code))
        and price.billing_cycle = lower(trim(v.billing_cycle)) and price.rank_ = 1
    where lower(trim(v.status)) = 'active'
""",
    ),
    (
        "infra",
        """
select tenant_id, sum(cost) as cost from vps group by tenant_id
""",
    ),
    (
        "ips",
        """
    select v.tenant_id,
           case when o.smtp_ip_id is not null then o.monthly_cost_usd
                when i.approximate_cost > 0 then i.approximate_cost
                when coalesce(i.is_dedicated, true) then ip_constant.cost
                else coalesce(i.approximate_cost, 0) end as cost
    from {app}.smtp_ip_addresses as i
    left join {app}.vps_instances as v on v.id = i.vps_instance_id
    left join {ref}.smtp_ip_cost_overrides as o on o.smtp_ip_id = i.id
    left join ip_constant on true
    where lower(trim(i.status)) in ('active', 'warmed', 'warming')
""",
    ),
    (
        "email_service",
        """
    select tenant_id, sum(cost) as cost from ips where tenant_id is not null group by tenant_id
""",
    ),
    (
        "active",
        """
    select s.id, s.tenant_id, s.current_period_start, s.current_period_end,
           nullif(trim(p.name), '') as plan_name, p.price_monthly,
           upper(trim(p.currency)) = 'USD' as is_usd,
           row_number() over (partition by s.tenant_id
                              order by p.price_monthly desc nulls last,
                                       nullif(trim(p.name), '') asc, s.id asc) as rank_
    from {app}.subscriptions as s
    left join {app}.plans as p on p.id = s.plan_id
    where lower(trim(s.status)) = 'active'
""",
    ),
    (
        "tenants",
        """
    select a.tenant_id, a.plan_name, a.current_period_start, a.current_period_end,
           r.revenue, nullif(trim(c.name), '') as company_name,
           coalesce(infra.cost, 0) as infra, coalesce(email_service.cost, 0) as email
    from active as a
    join (select tenant_id, coalesce(sum(price_monthly) filter (where is_usd), 0.00) as revenue
          from active group by tenant_id) as r on r.tenant_id = a.tenant_id
    left join {app}.companies as c on c.id = a.tenant_id
    left join infra on infra.tenant_id = a.tenant_id
    left join email_service on email_service.tenant_id = a.tenant_id
    where a.rank_ = 1
""",
    ),
]


_ALLOCATION_STAGES = [  # payments read the active subscriptions stage
    (
        "payments",
        """
    select a.tenant_id, sum(p.amount) as collected
    from {app}.payments as p
    join active as a on a.id = p.subscription_id
    where lower(trim(p.status)) = 'succeeded' and upper(trim(p.currency)) = 'USD'
      and p.billing_period_start >= a.current_period_start and p.billing_period_start <= {as_of}
    group by a.tenant_id
""",
    ),
    (
        "emails",
        """
    select s.tenant_id, coalesce(sum(b.emails_sent), 0) as sent
    from {app}.billing_analytics as b
    join {app}.subscriptions as s on s.id = b.subscription_id
    where b.period_start between {as_of} - 30 and {as_of}
    group by s.tenant_id
""",
    ),
]

STAGES = _COMMON_STAGES + _ALLOCATION_STAGES

MART_SELECTS = {
    "executive_business_summary": """
select tenant_id, company_name, plan_name, current_period_start, current_period_end,
    cast(revenue as numeric(14, 2)) as monthly_subscription_revenue,
    cast(infra as numeric(14, 2)) as infrastructure_costs,
    cast(email as numeric(14, 2)) as email_service_costs,
    cast(case when infra + email > 0 then round(revenue / (infra + email), 2) else 0 end
         as numeric(14, 2)) as gross_margin_ratio,
    cast(case when revenue > 0 then least(100, greatest(0,
         round((revenue - (infra + email)) / revenue * 100, 2))) else 0 end
         as numeric(5, 2)) as cost_efficiency_score,
    cast(infra + email as numeric(14, 2)) as total_operational_cost,
    case when revenue > (infra + email) * 2 then 'Excellent'
         when revenue > (infra + email) * 1.5 then 'Good'
         when revenue > (infra + email) then 'Monitor'
         else 'Critical Action Required' end as business_health_status,
    {as_of} as dashboard_date,
    cast(infra as numeric(14, 2)) as total_infrastructure_cost,
    cast(email as numeric(14, 2)) as total_email_service_cost,
    cast(infra + email as numeric(14, 2)) as total_monthly_cost,
    cast(revenue - (infra + email) as numeric(14, 2)) as monthly_profit
from tenants
""",
    "business_cost_allocation": """
select t.tenant_id, t.company_name, t.plan_name,
    cast(t.revenue as numeric(14, 2)) as price_monthly,
    cast(t.infra as numeric(14, 2)) as total_infrastructure_cost,
    cast(t.email as numeric(14, 2)) as total_email_service_cost,
    cast(coalesce(e.sent, 0) as bigint) as emails_sent_last_30_days,
    cast(case when coalesce(e.sent, 0) > 0 then round((t.infra + t.email) / e.sent, 4) else 0 end
         as numeric(14, 4)) as cost_per_email_delivered,
    cast(t.infra + t.email as numeric(14, 2)) as total_monthly_cost,
    cast(coalesce(p.collected, 0) as numeric(14, 2)) as payments_collected,
    cast(coalesce(p.collected, 0) - (t.infra + t.email) as numeric(14, 2)) as monthly_profit,
    cast(case when t.infra + t.email > 0
              then round(coalesce(p.collected, 0) / (t.infra + t.email), 2)
         else 0 end as numeric(14, 2)) as business_efficiency_ratio,
    {as_of} as as_of_date
from tenants as t
left join payments as p on p.tenant_id = t.tenant_id
left join emails as e on e.tenant_id = t.tenant_id
""",
}


def _one_statement(stages: list[tuple[str, str]], final: str) -> str:
    ctes = ",\n".join(f"{name} as ({body})" for name, body in stages)
    return f"with\n{ctes}\n{final}"


EXECUTIVE = _one_statement(_COMMON_STAGES, MART_SELECTS["executive_business_summary"])
ALLOCATION = _one_statement(STAGES, MART_SELECTS["business_cost_allocation"])
MARTS = {"executive_business_summary": EXECUTIVE, "business_cost_allocation": ALLOCATION}


def render(
    template: str, *, app_schema: str, reference_schema: str, as_of: date | None
) -> sql.Composed:
    """The statement for one mart; as_of None means CURRENT_DATE (the guide's live views)."""
    as_of_sql = (
        sql.SQL("current_date")
        if as_of is None
        else sql.SQL("cast({} as date)").format(sql.Literal(as_of.isoformat()))
    )
    return sql.SQL(template).format(  # the templates are constants of this module
        app=sql.Identifier(app_schema), ref=sql.Identifier(reference_schema), as_of=as_of_sql
    )
