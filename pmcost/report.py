"""The executive report: one self-contained HTML file for the period ending on an as-of day.

- Headline figures (revenue, modeled cost, gross margin and margin %, cost per email, active
  tenants) and the weekly trends come from the metrics layer: MetricFlow compiles each query
  from the semantic manifest the last refresh kept for production
  (target/production/semantic_manifest.json), and the SQL runs on the published tables, so a
  figure equals what `mf query` answers for the same metric and day.
- The modeled cost no tenant carries, health status, the best and worst tenants, the
  anomalies and the reconciliation are read from the published marts (aggregates and top-N
  only, never a row per tenant).
- Charts are Vega-Lite specifications rendered to SVG by vl-convert (Vega's own renderer,
  bundled) and written into the page: it holds no script, and no style sheet, font or image
  is fetched when it opens.

Reports are internal (every tenant's economics): written owner-only (0600, folders 0700) under
the report folder ($PMCOST_REPORT_DIR, else reports/ in the project), one folder per as-of day,
outside the docs site's target/ folder.
"""

from __future__ import annotations

import calendar
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pmcost import publish
from pmcost.errors import PmcostError, UsageError
from pmcost.settings import project_dir

PERIODS = ("day", "week", "month")
REPORT_DIR_VARIABLE = "PMCOST_REPORT_DIR"
SEMANTIC_MANIFEST = "semantic_manifest.json"
LINEAGE_FILE = "lineage.html"  # `dbt docs generate --static`, copied beside the reports
TOP_N = 10
ANOMALIES_LISTED = 25
# the headline metrics, in the order shown (names in models/marts/finance/_finance__semantic.yml)
HEADLINE = (
    ("revenue", "Revenue (monthly run rate)", "usd"),
    ("modeled_cost", "Modeled cost", "usd"),
    ("gross_profit", "Gross margin", "usd"),
    ("margin_pct", "Margin %", "pct"),
    ("cost_per_email", "Cost per 1,000 emails", "per1000"),
    ("active_tenants", "Active tenants", "int"),
)
TREND_METRICS = ("revenue", "modeled_cost", "margin_pct", "cost_per_email")
HEALTH_ORDER = ("Excellent", "Good", "Monitor", "Critical Action Required")
# cost_allocation_reconciliation's reasons a resource's cost is not allocated to a tenant
UNALLOCATED_REASONS = {
    "unallocated_shared_pool": "Shared pool (no tenant)",
    "unallocated_tenant_without_active_subscription": "Tenant without an active subscription",
    "unallocated_ip_without_vps": "Dedicated IP without a VPS",
}
FOOTER = (
    "Modeled costs, not invoices. These figures approximate infrastructure cost per tenant "
    "from internal reference values (VPS and SMTP IP approximate costs, Finance's price list "
    "and defaults) using controlled heuristics, not provider metering. They do not represent "
    "authoritative, provider-sourced billing metrics: final financial truth remains in "
    "Finance systems and provider invoices. Internal use only."
)
Say = Callable[[str], None]
NONE_SHOWN = "\u2013"  # an en dash where a figure is undefined (no revenue, no history)


# -- the period --------------------------------------------------------------------------------
def _month_back(day: date) -> date:
    """The same day a month earlier, or that month's last day when it is shorter."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Period:
    """The `kind` (day, week or month) ending on `end`, and the one before it."""

    kind: str
    end: date

    @property
    def previous_end(self) -> date:
        if self.kind == "day":
            return self.end - timedelta(days=1)
        if self.kind == "week":
            return self.end - timedelta(days=7)
        return _month_back(self.end)

    @property
    def start(self) -> date:
        return self.previous_end + timedelta(days=1)

    @property
    def title(self) -> str:
        if self.kind == "day":
            return f"Daily report, {self.end:%A %d %B %Y}"
        return f"{self.kind.capitalize()}ly report, {self.start:%d %b} to {self.end:%d %b %Y}"

    @property
    def compared_with(self) -> str:
        return {"day": "the day before", "week": "a week earlier", "month": "a month earlier"}[
            self.kind
        ]


def editions_for(day: date) -> list[str]:
    """What a refresh as of `day` writes: the day's report; Mondays the week's too; the first
    of a month the month's too."""
    editions = ["day"]
    if day.weekday() == 0:
        editions.append("week")
    if day.day == 1:
        editions.append("month")
    return editions


def report_root() -> Path:
    override = os.environ.get(REPORT_DIR_VARIABLE)
    return Path(override).resolve() if override else project_dir() / "reports"


def report_path(root: Path, period: Period) -> Path:
    return root / period.end.isoformat() / f"executive-{period.kind}.html"


# -- the metrics layer -------------------------------------------------------------------------
class _CompileOnly:
    """What MetricFlow needs of a SQL client to compile a query for PostgreSQL; the SQL runs
    on the report's own connection."""

    def __init__(self) -> None:
        from metricflow.protocols.sql_client import SqlEngine
        from metricflow.sql.render.postgres import PostgresSQLSqlPlanRenderer

        self.sql_engine_type = SqlEngine.POSTGRES
        self.sql_plan_renderer = PostgresSQLSqlPlanRenderer()


class Metrics:
    """MetricFlow over the semantic manifest of the published relations."""

    def __init__(self, manifest_path: Path) -> None:
        if not manifest_path.is_file():
            raise PmcostError(
                f"{manifest_path} is missing: the report reads the metrics of the published "
                "tables, which a successful `pmcost refresh` keeps there; run one first"
            )
        from metricflow.engine.metricflow_engine import MetricFlowEngine
        from metricflow_semantics.model.dbt_manifest_parser import (
            parse_manifest_from_dbt_generated_manifest,
        )
        from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

        manifest = parse_manifest_from_dbt_generated_manifest(
            manifest_json_string=manifest_path.read_text()
        )
        self.engine = MetricFlowEngine(
            semantic_manifest_lookup=SemanticManifestLookup(manifest),
            sql_client=_CompileOnly(),  # type: ignore[arg-type]
        )

    def compile(self, metrics: Iterable[str], group_by: str, where: str | None = None) -> str:
        """One query for every metric asked, at MetricFlow's optimization level O4: its
        subqueries without CTEs. At the default level (O5) metrics of different kinds
        (simple, derived, ratio) asked together share a CTE of the whole fact, which
        PostgreSQL computes before the day filter; without it each subquery keeps the
        filter and reads only the days it names, through the fact's index on MetricFlow's
        day."""
        from metricflow.engine.metricflow_engine import MetricFlowQueryRequest
        from metricflow.sql.optimizer.optimization_levels import SqlOptimizationLevel

        request = MetricFlowQueryRequest.create(
            metric_names=list(metrics),
            group_by_names=[group_by],
            where_constraints=[where] if where else None,
            order_by_names=[group_by],
            sql_optimization_level=SqlOptimizationLevel.O4,
        )
        statement = self.engine.explain(request).sql_statement
        if statement.bind_parameter_set.param_items:
            raise PmcostError("MetricFlow compiled a query with bind parameters; not supported")
        return statement.sql

    def by_time(
        self, conn: psycopg.Connection, metrics: Iterable[str], group_by: str, where: str
    ) -> dict[date, dict[str, Any]]:
        """`metrics` by `group_by` (a metric_time grain), by period start."""
        by_start: dict[date, dict[str, Any]] = {}
        for row in self.query(conn, metrics, group_by, where):
            start = row[group_by]
            day = start.date() if isinstance(start, datetime) else start
            by_start[day] = {**row, group_by: day}
        return dict(sorted(by_start.items()))

    def query(
        self,
        conn: psycopg.Connection,
        metrics: Iterable[str],
        group_by: str,
        where: str | None = None,
    ) -> list[dict[str, Any]]:
        # MetricFlow's SQL, without parameters (compile refuses bind parameters)
        return _rows(conn, self.compile(metrics, group_by, where).encode())


def _days_filter(*days: date) -> str:
    """A MetricFlow where constraint: metric_time's day is one of `days` (ISO dates, never
    user text)."""
    listed = ", ".join(f"'{day.isoformat()}'" for day in days)
    return "{{ TimeDimension('metric_time', 'day') }} " + f"in ({listed})"


# -- what the report shows ----------------------------------------------------------------------
@dataclass
class Headline:
    name: str
    label: str
    kind: str
    current: Decimal | float | int | None
    previous: Decimal | float | int | None

    @property
    def change(self) -> Decimal | float | int | None:
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous  # type: ignore[operator]


@dataclass
class ReportData:
    period: Period
    schema: str
    published_as_of: date
    history_first_day: date
    headline: list[Headline]
    weeks: list[dict[str, Any]]
    health: list[tuple[str, int, int]]  # status, tenants on the as-of day, at the previous end
    best: list[dict[str, Any]]
    worst: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]
    anomaly_count: int
    anomaly_days: int  # published days of the period whose anomalies are known
    reconciliation_month: date | None
    reconciliation: list[dict[str, Any]]
    # the modeled cost no tenant carries, by reason, on the marts' day (None for another day:
    # cost_allocation_reconciliation holds the published day only)
    unallocated: list[dict[str, Any]] | None = None
    allocated_cost: Decimal | None = None
    not_invoiced: int = 0
    not_modeled: int = 0
    generated_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )


def _table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def _rows(
    conn: psycopg.Connection, statement: sql.Composable | bytes, params: tuple | None = None
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def history_bounds(conn: psycopg.Connection, schema: str) -> tuple[date, date] | None:
    row = conn.execute(
        sql.SQL("select min(economics_date), max(economics_date) from {}").format(
            _table(schema, "fct_tenant_economics_daily")
        )
    ).fetchone()
    return None if row is None or row[0] is None else (row[0], row[1])


def resolve_as_of(
    conn: psycopg.Connection, schema: str, as_of: date | None
) -> tuple[date, date, date]:
    """The report's as-of day (default: the published marts' day), the history's first day
    and the published marts' day."""
    published = publish.last_published_as_of(conn, schema)
    if published is None:
        raise PmcostError(
            f"nothing is published in {schema} yet: run `pmcost refresh` before `pmcost report`"
        )
    # an empty history (an operator accepted empty application tables) still has its day
    first, last = history_bounds(conn, schema) or (published, published)
    day = as_of or published
    if not first <= day <= last:
        raise UsageError(
            f"--as-of {day}: the published history covers {first} to {last}; pick a day in it"
        )
    return day, first, published


def week_last_days(conn: psycopg.Connection, schema: str, end: date) -> list[date]:
    """The last day with data of each week up to `end`: the days of the history, walked on
    the fact's economics_date index one distinct day at a time (a few milliseconds however
    many tenants each day has)."""
    fact = _table(schema, "fct_tenant_economics_daily")
    rows = conn.execute(
        sql.SQL(
            """
            with recursive days (day) as (
                select min(economics_date) from {fact} where economics_date <= %(end)s
                union all
                select (
                    select min(economics_date) from {fact}
                    where economics_date > days.day and economics_date <= %(end)s
                )
                from days
                where days.day is not null
            )
            select max(day) from days where day is not null
            group by date_trunc('week', day) order by 1
            """
        ).format(fact=fact),
        {"end": end},
    ).fetchall()
    return [row[0] for row in rows] or [end]


def collect(
    conn: psycopg.Connection,
    metrics: Metrics,
    schema: str,
    period: Period,
    first: date,
    published: date,
) -> ReportData:
    fact = _table(schema, "fct_tenant_economics_daily")
    # headline: each metric on the period's last day and on the previous period's last day
    # (the measures are monthly run rates, semi-additive over time: a period's value is its
    # last day's)
    names = [name for name, _label, _kind in HEADLINE]
    by_day = metrics.by_time(
        conn, names, "metric_time__day", _days_filter(period.end, period.previous_end)
    )
    now, before = by_day.get(period.end, {}), by_day.get(period.previous_end, {})
    headline = [
        Headline(name, label, kind, now.get(name), before.get(name))
        for name, label, kind in HEADLINE
    ]
    # each week's value is its last day's: read only those days (the same figures as the
    # whole history by week, without reading every day of it)
    weeks = list(
        metrics.by_time(
            conn,
            TREND_METRICS,
            "metric_time__week",
            _days_filter(*week_last_days(conn, schema, period.end)),
        ).values()
    )

    health_rows = _rows(
        conn,
        sql.SQL(
            "select business_health_status as status, "
            "count(*) filter (where economics_date = %s) as now, "
            "count(*) filter (where economics_date = %s) as before "
            "from {} where economics_date in (%s, %s) group by business_health_status"
        ).format(fact),
        (period.end, period.previous_end, period.end, period.previous_end),
    )
    counted = {row["status"]: (row["now"], row["before"]) for row in health_rows}
    order = [*HEALTH_ORDER, *sorted(set(counted) - set(HEALTH_ORDER))]
    health = [(status, *counted.get(status, (0, 0))) for status in order]

    ranked = sql.SQL(
        """
        select
            fact.tenant_id,
            summary.company_name,
            fact.plan_name,
            fact.monthly_subscription_revenue as revenue,
            fact.total_monthly_cost as modeled_cost,
            fact.monthly_profit as gross_profit,
            fact.monthly_profit / nullif(fact.monthly_subscription_revenue, 0) as margin_pct,
            fact.business_health_status
        from {fact} as fact
        left join {summary} as summary on summary.tenant_id = fact.tenant_id
        where fact.economics_date = %s
        order by fact.monthly_profit {direction}, fact.tenant_id
        limit {limit}
        """
    )
    best, worst = (
        _rows(
            conn,
            ranked.format(
                fact=fact,
                summary=_table(schema, "executive_business_summary"),
                direction=sql.SQL(direction),
                limit=sql.Literal(TOP_N),
            ),
            (period.end,),
        )
        for direction in ("desc", "asc")
    )

    anomalies, count, days = _anomalies(conn, schema, period)
    month, reconciliation = _reconciliation(conn, schema, period.end)
    allocated, unallocated = _allocation(conn, schema) if period.end == published else (None, None)
    return ReportData(
        period=period,
        schema=schema,
        published_as_of=published,
        history_first_day=first,
        headline=headline,
        weeks=weeks,
        health=health,
        best=best,
        worst=worst,
        anomalies=anomalies,
        anomaly_count=count,
        anomaly_days=days,
        reconciliation_month=month,
        reconciliation=reconciliation,
        unallocated=unallocated,
        allocated_cost=allocated,
        not_invoiced=sum(row["modeled_not_invoiced_count"] or 0 for row in reconciliation),
        not_modeled=sum(row["invoiced_not_modeled_count"] or 0 for row in reconciliation),
    )


def _anomalies(
    conn: psycopg.Connection, schema: str, period: Period
) -> tuple[list[dict[str, Any]], int, int]:
    """The anomalies each publish of the period recorded (the last publish of each day), the
    first ANOMALIES_LISTED by size of the move, the total count and the days covered."""
    audit = _table(publish.audit_schema(schema), publish.AUDIT_TABLE)
    rows = _rows(
        conn,
        sql.SQL(
            """
            with last_of_day as (
                select distinct on (as_of_date) as_of_date, anomalies
                from {audit}
                where as_of_date between %s and %s and anomalies is not null
                order by as_of_date, published_at desc
            )
            select
                last_of_day.as_of_date,
                anomaly ->> 'tenant_id' as tenant_id,
                anomaly ->> 'company_name' as company_name,
                anomaly ->> 'anomaly_type' as anomaly_type,
                (anomaly ->> 'current_value')::numeric as current_value,
                (anomaly ->> 'baseline_value')::numeric as baseline_value,
                (anomaly ->> 'relative_change')::numeric as relative_change,
                anomaly ->> 'previous_status' as previous_status,
                anomaly ->> 'current_status' as current_status,
                count(*) over () as total
            from last_of_day
            cross join lateral jsonb_array_elements(last_of_day.anomalies) as anomaly
            order by abs((anomaly ->> 'relative_change')::numeric) desc nulls last,
                last_of_day.as_of_date desc, anomaly ->> 'tenant_id', anomaly ->> 'anomaly_type'
            limit {limit}
            """
        ).format(audit=audit, limit=sql.Literal(ANOMALIES_LISTED)),
        (period.start, period.end),
    )
    days = conn.execute(
        sql.SQL(
            "select count(distinct as_of_date) from {} "
            "where as_of_date between %s and %s and anomalies is not null"
        ).format(audit),
        (period.start, period.end),
    ).fetchone()
    total = rows[0]["total"] if rows else 0
    return rows, int(total), int(days[0] if days else 0)


def _allocation(conn: psycopg.Connection, schema: str) -> tuple[Decimal, list[dict[str, Any]]]:
    """The marts' day's modeled cost allocated to tenants, and the rest by reason (every
    reason listed, at zero when no resource has it): the spec's allocated + unallocated =
    total modeled cost, from cost_allocation_reconciliation."""
    rows = _rows(
        conn,
        sql.SQL(
            "select allocation_status, sum(resource_count) as resources, "
            "sum(monthly_cost) as monthly_cost from {} group by allocation_status"
        ).format(_table(schema, "cost_allocation_reconciliation")),
    )
    found = {row["allocation_status"]: row for row in rows}
    allocated = found.pop("allocated", {}).get("monthly_cost") or Decimal("0.00")
    order = [*UNALLOCATED_REASONS, *sorted(set(found) - set(UNALLOCATED_REASONS))]
    unallocated = [
        {
            "status": status,
            "reason": UNALLOCATED_REASONS.get(status, status.replace("_", " ")),
            "resources": int(found.get(status, {}).get("resources") or 0),
            "monthly_cost": found.get(status, {}).get("monthly_cost") or Decimal("0.00"),
        }
        for status in order
    ]
    return allocated, unallocated


def whole_business(data: ReportData) -> dict[str, Any]:
    """Allocated + unallocated = total modeled cost, and the gross margin after all of it."""
    revenue = next(item.current for item in data.headline if item.name == "revenue")
    unallocated = sum((row["monthly_cost"] for row in data.unallocated or []), Decimal("0.00"))
    total = (data.allocated_cost or Decimal("0.00")) + unallocated
    profit = None if revenue is None else Decimal(str(revenue)) - total
    return {
        "unallocated": unallocated,
        "resources": sum(row["resources"] for row in data.unallocated or []),
        "total": total,
        "profit": profit,
        "margin_pct": profit / Decimal(str(revenue)) if profit is not None and revenue else None,
    }


def _reconciliation(
    conn: psycopg.Connection, schema: str, as_of: date
) -> tuple[date | None, list[dict[str, Any]]]:
    """The latest billing month up to the as-of day's month, per cost category."""
    monthly = _table(schema, "invoice_reconciliation_monthly")
    row = conn.execute(
        sql.SQL("select max(billing_month) from {} where billing_month <= %s").format(monthly),
        (as_of,),
    ).fetchone()
    month = row[0] if row else None
    if month is None:
        return None, []
    return month, _rows(
        conn,
        sql.SQL(
            """
            select category, modeled_total, invoiced_total, ledger_total, matched_invoiced_share,
                unexplained_variance, matched_count, amount_mismatch_count,
                invoiced_not_modeled_count, modeled_not_invoiced_count
            from {}
            where billing_month = %s
            order by array_position(
                array['vps', 'smtp_ip', 'shared_database', 'other']::text[], category
            ), category
            """
        ).format(monthly),
        (month,),
    )


def warm_up() -> None:
    """The report's fixed costs, about a second: MetricFlow's import and the start of
    vl-convert's renderer. A refresh runs this in a thread while dbt builds in its own
    process, so the report step after the publish pays only its queries and its page. A
    failure here is left to the report step, which meets it again and says so."""
    try:
        import metricflow.engine.metricflow_engine  # noqa: F401
        import vl_convert

        vl_convert.vegalite_to_svg({"mark": "point", "data": {"values": []}})
    except Exception:  # noqa: S110 - the report step reports it
        pass


# -- the page ----------------------------------------------------------------------------------
def _chart_svg(spec: dict[str, Any]) -> str:
    import vl_convert

    svg: str = vl_convert.vegalite_to_svg(spec)
    return svg.split("?>", 1)[1] if svg.startswith("<?xml") else svg


VEGA_LITE = "https://vega.github.io/schema/vega-lite/v5.json"  # the schema id; never fetched
WEEK_AXIS = {  # one band per week, labelled by its Monday (MetricFlow's weeks start on Mondays)
    "field": "week",
    "type": "ordinal",
    "timeUnit": "yearmonthdate",
    "title": "Week beginning",
    "axis": {"format": "%d %b", "labelAngle": 0},
}
HEALTH_COLOURS = ["#2a9d8f", "#8ab17d", "#e9c46a", "#e76f51"]


def _measure(field: str, title: str, number_format: str) -> dict[str, Any]:
    """A chart's quantitative axis (Vega-Lite encoding)."""
    return {
        "field": field,
        "type": "quantitative",
        "title": title,
        "axis": {"format": number_format},
    }


def _line(title: str, values: list[dict[str, Any]], y: dict[str, Any], **extra: Any) -> dict:
    """A weekly line chart (Vega-Lite)."""
    return {
        "$schema": VEGA_LITE,
        "title": title,
        "width": 440,
        "height": 190,
        "data": {"values": values},
        "mark": {"type": "line", "point": True, **extra.pop("mark", {})},
        "encoding": {"x": WEEK_AXIS, "y": y, **extra},
    }


def charts(data: ReportData) -> dict[str, str]:
    """The trend and health charts: Vega-Lite specifications, rendered to inline SVG."""

    def number(value: object) -> float | None:
        return None if value is None else float(value)  # type: ignore[arg-type]

    weeks = [
        {
            "week": str(row["metric_time__week"])[:10],
            "revenue": number(row["revenue"]),
            "modeled_cost": number(row["modeled_cost"]),
            "margin_pct": number(row["margin_pct"]),
            "cost_per_1000": None
            if row["cost_per_email"] is None
            else float(row["cost_per_email"]) * 1000,
        }
        for row in data.weeks
    ]
    money_by_week = [
        {"week": row["week"], "series": series, "usd": row[key]}
        for row in weeks
        for key, series in (("revenue", "Revenue"), ("modeled_cost", "Modeled cost"))
    ]
    specs = {
        "revenue_cost": _line(
            "Revenue and modeled cost by week",
            money_by_week,
            _measure("usd", "USD per month", "$,.0f"),
            color={
                "field": "series",
                "type": "nominal",
                "title": None,
                "scale": {"domain": ["Revenue", "Modeled cost"], "range": ["#1f6f8b", "#e07a5f"]},
                "legend": {"orient": "top"},
            },
        ),
        "margin": _line(
            "Margin % by week",
            weeks,
            _measure("margin_pct", "Margin", ".0%"),
            mark={"color": "#2a9d8f"},
        ),
        "per_email": _line(
            "Modeled cost per 1,000 emails by week",
            weeks,
            _measure("cost_per_1000", "USD per 1,000 emails", "$.2f"),
            mark={"color": "#6d597a"},
        ),
        "health": {
            "$schema": VEGA_LITE,
            "title": "Tenants by health status",
            "width": 330,
            "height": 120,
            "data": {"values": [{"status": s, "tenants": n} for s, n, _ in data.health]},
            "mark": "bar",
            "encoding": {
                "y": {
                    "field": "status",
                    "type": "nominal",
                    "title": None,
                    "sort": list(HEALTH_ORDER),
                },
                "x": {"field": "tenants", "type": "quantitative", "title": "Tenants"},
                "color": {
                    "field": "status",
                    "type": "nominal",
                    "legend": None,
                    "scale": {"domain": list(HEALTH_ORDER), "range": HEALTH_COLOURS},
                },
            },
        },
    }
    return {name: _chart_svg(spec) for name, spec in specs.items()}


def money(value: object, places: int = 2) -> str:
    if value is None:
        return NONE_SHOWN
    number = Decimal(str(value))
    sign = "-" if number < 0 else ""
    return f"{sign}${abs(number):,.{places}f}"


def figure(value: object, kind: str) -> str:
    if value is None:
        return NONE_SHOWN
    if kind == "usd":
        return money(value)
    if kind == "usd4":
        return money(value, 4)
    if kind == "per1000":  # a cost per email, shown per 1,000 emails (cents, not 1/100 cents)
        return money(Decimal(str(value)) * 1000)
    if kind == "pct":
        return f"{Decimal(str(value)) * 100:.1f}%"
    return f"{int(value):,}"  # type: ignore[call-overload]


def change(item: Headline) -> str:
    delta = item.change
    if delta is None:
        return "no earlier figure"
    if item.kind == "pct":
        return f"{Decimal(str(delta)) * 100:+.1f} pts"
    shown = figure(abs(delta), item.kind)  # type: ignore[arg-type]
    sign = "+" if delta > 0 else "-" if delta < 0 else "±"
    relative = ""
    if item.previous:
        relative = f" ({Decimal(str(delta)) / Decimal(str(item.previous)) * 100:+.1f}%)"
    return f"{sign}{shown}{relative}"


def anomaly_text(row: dict[str, Any]) -> str:
    if row["anomaly_type"] == "health_status_dropped":
        return f"health {row['previous_status']} → {row['current_status']}"
    what = "modeled cost" if row["anomaly_type"] == "cost_moved" else "cost per email"
    places = 2 if row["anomaly_type"] == "cost_moved" else 4
    moved = row["relative_change"]
    shown = f" ({Decimal(moved) * 100:+.1f}%)" if moved is not None else ""
    return (
        f"{what} {money(row['current_value'], places)} against "
        f"{money(row['baseline_value'], places)}{shown}"
    )


def lede(data: ReportData) -> str:
    """The page's first sentence: the period in one line."""
    figures = {item.name: item for item in data.headline}
    revenue, cost = figures["revenue"], figures["modeled_cost"]
    if revenue.current is None:
        return f"No tenant had an active subscription on {data.period.end.isoformat()}."
    critical = sum(now for status, now, _ in data.health if status == HEALTH_ORDER[-1])
    anomalies = "1 anomaly" if data.anomaly_count == 1 else f"{data.anomaly_count} anomalies"
    return (
        f"Revenue {figure(revenue.current, 'usd')} against modeled cost "
        f"{figure(cost.current, 'usd')}: a gross margin of "
        f"{figure(figures['gross_profit'].current, 'usd')} "
        f"({figure(figures['margin_pct'].current, 'pct')}). {critical} of "
        f"{figure(figures['active_tenants'].current, 'int')} tenants need action; "
        f"{anomalies} in the period."
        + (_unallocated_clause(data) if data.unallocated is not None else "")
    )


def _unallocated_clause(data: ReportData) -> str:
    whole = whole_business(data)
    if not whole["unallocated"]:
        return " Every modeled cost is allocated to a tenant."
    return (
        f" A further {money(whole['unallocated'])} of modeled cost "
        f"({whole['unallocated'] / whole['total'] * 100:.0f}% of {money(whole['total'])}) "
        "belongs to no active tenant and is not in these figures."
    )


def render(data: ReportData) -> str:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pmcost", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(money=money, figure=figure)
    environment.globals.update(
        change=change, anomaly_text=anomaly_text, lede=lede, whole_business=whole_business
    )
    template = environment.get_template("executive_report.html.j2")
    return template.render(data=data, charts=charts(data), footer=FOOTER)


# -- writing -----------------------------------------------------------------------------------
def write_private(path: Path, content: bytes) -> None:
    """Write `path` owner-only (0600, its folders 0700), atomically: a reader sees the old
    file or the new one."""
    for folder in reversed([path.parent, *path.parent.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o700)
    path.parent.chmod(0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass
class Written:
    path: Path
    period: str
    as_of: date
    seconds: float


def write_report(
    conn: psycopg.Connection,
    *,
    manifest: Path,
    schema: str,
    period: str,
    as_of: date | None = None,
    root: Path | None = None,
) -> Written:
    started = time.monotonic()
    if period not in PERIODS:
        raise UsageError(f"--period {period}: use one of {', '.join(PERIODS)}")
    day, first, published = resolve_as_of(conn, schema, as_of)
    metrics = Metrics(manifest)
    with conn.transaction():  # one snapshot of the published tables for every figure
        conn.execute("set transaction isolation level repeatable read, read only")
        data = collect(conn, metrics, schema, Period(period, day), first, published)
    path = report_path(root or report_root(), data.period)
    write_private(path, render(data).encode())
    return Written(path, period, day, round(time.monotonic() - started, 3))


def copy_lineage(static_site: Path, folder: Path) -> Path | None:
    """The docs site as one file (`dbt docs generate --static`), beside the day's reports."""
    if not static_site.is_file():
        return None
    target = folder / LINEAGE_FILE
    write_private(target, static_site.read_bytes())
    return target
