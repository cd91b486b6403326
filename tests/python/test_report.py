"""The executive report: written by each successful refresh, its figures the published
tables' (headline and trends through MetricFlow, the rest from the marts) to the cent, the
week and month editions, owner-only files, and a page that opens offline in Chromium.

(A failed refresh writes none: test_failed_runs checks it beside the rest of what a failed
run leaves unchanged.)"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pmcost import refresh, report

from .conftest import ANCHOR, Database
from .test_docs_site import CHROMIUM_FLAGS, chromium

CENT = Decimal("0.01")
FACT = "analytics.fct_tenant_economics_daily"
AUDIT = "analytics_publication.published_runs"


def _expected_headline(database: Database, day: date) -> dict[str, object]:
    """The headline metrics on `day`, by hand from the published daily fact."""
    revenue, cost, emails, tenants = database.query(
        f"select sum(monthly_subscription_revenue), sum(total_monthly_cost), "
        f"sum(emails_sent_last_30_days), count(distinct tenant_id) from {FACT} "
        "where economics_date = %s",
        (day,),
    )[0]
    return {
        "revenue": revenue,
        "modeled_cost": cost,
        "gross_profit": revenue - cost,
        "margin_pct": (revenue - cost) / revenue,
        "cost_per_email": cost / emails,
        "active_tenants": tenants,
    }


def _cards(page: str) -> dict[str, tuple[str, str]]:
    """Each headline card: metric name -> (value shown, change shown)."""
    found = re.findall(
        r'data-metric="(\w+)">\s*<div class="label">[^<]*</div>\s*'
        r'<div class="value">([^<]*)</div>\s*<div class="change">([^<]*)</div>',
        page,
    )
    return {name: (value, moved) for name, value, moved in found}


def _section(page: str, section_id: str) -> str:
    return page.split(f'id="{section_id}"', 1)[1].split("</section>", 1)[0]


def _reads_only_the_days_it_shows(database: Database, period: report.Period) -> None:
    """Every metric of the headline in one query, and each of its reads of the daily fact
    goes through the index on MetricFlow's day with the period's days as its condition: not
    the whole history (a CTE of the whole fact, as MetricFlow's default level compiles
    metrics of different kinds asked together, is a read without that condition)."""
    metrics = report.Metrics(database.target / "production" / report.SEMANTIC_MANIFEST)
    names = [name for name, _label, _kind in report.HEADLINE]
    days = report._days_filter(period.end, period.previous_end)
    statement = metrics.compile(names, "metric_time__day", days)
    with database.connect() as conn:
        conn.execute("set enable_seqscan = off")  # the demo is small: judge the shape, not cost
        plan = conn.execute(b"explain (format json) " + statement.encode()).fetchone()[0]

    def nodes(node: dict) -> Iterator[dict]:
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    reads = [
        node
        for node in nodes(plan[0]["Plan"])
        if node.get("Relation Name") == "fct_tenant_economics_daily"
        or node.get("Index Name", "").startswith("fct_tenant_economics_daily")
    ]
    assert reads, plan
    for node in reads:
        assert node["Node Type"] != "Seq Scan", node
        if "Index Name" in node:
            assert node["Index Name"] == "fct_tenant_economics_daily_metric_day_idx", node
            assert period.end.isoformat() in node["Index Cond"], node


def _check_headline(database: Database, page: str, period: report.Period) -> None:
    now = _expected_headline(database, period.end)
    before = _expected_headline(database, period.previous_end)
    cards = _cards(page)
    assert set(cards) == {name for name, _label, _kind in report.HEADLINE}
    for name, label, kind in report.HEADLINE:
        expected = report.Headline(name, label, kind, now[name], before[name])
        value, moved = cards[name]
        assert value == report.figure(now[name], kind), name
        assert moved == report.change(expected), name
    # the money figures to the cent, read back from the page
    assert Decimal(cards["revenue"][0].strip("$").replace(",", "")) == now["revenue"]
    assert Decimal(cards["modeled_cost"][0].strip("$").replace(",", "")) == now["modeled_cost"]


def _check_health(database: Database, page: str, period: report.Period) -> None:
    shown = {
        status: (int(now), int(before))
        for status, now, before in re.findall(
            r'<tr data-status="([^"]+)"><td>[^<]*</td><td class="num">(\d+)</td>'
            r'<td class="num">(\d+)</td>',
            page,
        )
    }
    counted = dict.fromkeys(shown, (0, 0))
    for status, now, before in database.query(
        f"select business_health_status, count(*) filter (where economics_date = %s), "
        f"count(*) filter (where economics_date = %s) from {FACT} group by 1",
        (period.end, period.previous_end),
    ):
        counted[status] = (now, before)
    assert shown == counted and sum(now for now, _ in shown.values()) > 0


def test_the_refresh_writes_the_report_of_the_published_day_and_its_editions(
    built: Database, tmp_path: Path
) -> None:
    # Finance's demo files (a month to reconcile) and five weeks of history behind the
    # published days (weekly trends)
    built.load_demo_finance(tmp_path / "finance")
    first = built.query(f"select min(economics_date) from {FACT}")[0][0]
    built.extend_history_back(first, first - timedelta(days=35))
    # an earlier publish of the week recorded an anomaly (as a refresh of that day would):
    # the week's and the month's reports list it, the day's does not
    earlier = ANCHOR - timedelta(days=3)
    tenant = built.query(f"select tenant_id::text from {FACT} limit 1")[0][0]
    recorded = {
        "tenant_id": tenant,
        "company_name": "Earlier Day Ltd",
        "anomaly_type": "cost_moved",
        "current_value": "180.00",
        "baseline_value": "100.00",
        "relative_change": "0.8000",
        "previous_status": None,
        "current_status": None,
        "as_of_date": earlier.isoformat(),
    }
    built.query(
        f"insert into {AUDIT} (invocation_id, as_of_date, published_at, figures, anomalies) "
        "values ('earlier-run', %s, now() - interval '1 day', '{}', %s) returning 1",
        (earlier, json.dumps([recorded])),
    )

    # and one tenant's VPS now costs three times as much: an anomaly of the day
    moved = built.query(
        f"select tenant_id from {FACT} where economics_date = %s and infrastructure_cost > 0 "
        "order by tenant_id limit 1",
        (ANCHOR,),
    )[0][0]
    built.query(
        "update vps_instances set approximate_cost = approximate_cost * 3 + 50 "
        "where tenant_id = %s and lower(trim(status)) = 'active' returning 1",
        (moved,),
    )

    result = built.pmcost("refresh", "--target", "postgres", "--as-of", ANCHOR.isoformat())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    summary = json.loads((built.target / "refresh" / "last.json").read_text())
    folder = built.work_dir / "reports" / ANCHOR.isoformat()
    day_report = folder / "executive-day.html"
    # a Friday: the day's report only, and the docs site as one file beside it
    assert summary["reports"] == [
        {"period": "day", "path": str(day_report)},
        {"period": "lineage", "path": str(folder / report.LINEAGE_FILE)},
    ]
    assert f"report: {day_report}" in result.stdout
    # internal: owner-only files and folders, outside the docs site (target/)
    for path in (folder.parent, folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (day_report, folder / report.LINEAGE_FILE):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    lineage = (folder / report.LINEAGE_FILE).read_text()
    assert "executive_business_summary" in lineage and len(lineage) > 1_000_000
    # the site describes what readers query: the published schema, never the candidate
    assert '"schema": "analytics"' in lineage and "analytics_candidate" not in lineage

    page = day_report.read_text()
    period = report.Period("day", ANCHOR)
    _check_headline(built, page, period)
    _check_health(built, page, period)
    # the first sentence: revenue and the tenants that need action
    lede = page.split('id="lede">', 1)[1].split("</p>", 1)[0]
    critical, active = built.query(
        f"select count(*) filter (where business_health_status = 'Critical Action Required'), "
        f"count(*) from {FACT} where economics_date = %s",
        (ANCHOR,),
    )[0]
    headline = _expected_headline(built, ANCHOR)
    assert lede.startswith(f"Revenue {report.money(headline['revenue'])} against modeled cost")
    assert f"{critical} of {active:,} tenants need action" in lede

    # weekly trends: each week's last day with data, summed (MetricFlow's semi-additive rule)
    weeks = built.query(
        f"""
        with last_days as (
            select date_trunc('week', economics_date)::date as week, max(economics_date) as day
            from {FACT} group by 1
        )
        select last_days.week, sum(f.monthly_subscription_revenue), sum(f.total_monthly_cost)
        from last_days inner join {FACT} as f on f.economics_date = last_days.day
        group by last_days.week order by last_days.week
        """
    )
    shown_weeks = re.findall(
        r'<tr data-week="([\d-]+)"><td>[^<]*</td><td class="num">([^<]*)</td>'
        r'<td class="num">([^<]*)</td>',
        page,
    )
    assert len(weeks) >= 6
    assert [
        (week.isoformat(), report.money(rev), report.money(cost)) for week, rev, cost in weeks
    ] == (shown_weeks)

    # the 10 best and worst tenants by gross margin, in order
    for table, direction in (("best", "desc"), ("worst", "asc")):
        expected = [
            row[0]
            for row in built.query(
                f"select tenant_id::text from {FACT} where economics_date = %s "
                f"order by monthly_profit {direction}, tenant_id limit 10",
                (ANCHOR,),
            )
        ]
        block = page.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
        assert re.findall(r'data-tenant="([^"]+)"', block) == expected, table

    # the day's anomalies: the published tenant_cost_anomalies, not the earlier day's
    published = {
        (tenant_id, kind)
        for tenant_id, kind in built.query(
            "select tenant_id::text, anomaly_type from analytics.tenant_cost_anomalies"
        )
    }
    assert "cost_moved" in {kind for _tenant, kind in published}, published
    # the publish recorded them, in its own row of the publication record
    recorded_now = built.query(f"select anomalies from {AUDIT} order by published_at desc limit 1")
    assert {(a["tenant_id"], a["anomaly_type"]) for a in recorded_now[0][0]} == published
    anomalies = _section(page, "anomalies")
    assert set(re.findall(r'data-tenant="([^"]+)" data-kind="(\w+)"', anomalies)) == published
    assert "Earlier Day Ltd" not in anomalies

    # the latest billing month's reconciliation, per category, to the cent
    month = built.query(
        "select max(billing_month) from analytics.invoice_reconciliation_monthly "
        "where billing_month <= %s",
        (ANCHOR,),
    )[0][0]
    assert f"{month:%B %Y}" in _section(page, "reconciliation")
    for category, modeled, invoiced, share, variance in built.query(
        "select category, modeled_total, invoiced_total, matched_invoiced_share, "
        "unexplained_variance from analytics.invoice_reconciliation_monthly "
        "where billing_month = %s",
        (month,),
    ):
        row = page.split(f'<tr data-category="{category}">', 1)[1].split("</tr>", 1)[0]
        cells = re.findall(r'<td class="num">([^<]*)</td>', row)
        assert cells[0] == report.money(modeled) and cells[1] == report.money(invoiced), category
        assert cells[3] == report.figure(share, "pct"), category
        assert cells[4] == report.money(variance), category
    assert "Modeled costs, not invoices" in page and "provider invoices" in page

    # the modeled cost no tenant carries, by reason, to the cent, on the marts' day: allocated
    # (the headline's modeled cost) + not allocated = the total modeled cost
    by_status = dict(
        built.query(
            "select allocation_status, sum(monthly_cost) "
            "from analytics.cost_allocation_reconciliation group by allocation_status"
        )
    )
    allocated = by_status.pop("allocated")
    assert sum(by_status.values()) > 0  # the demo plants unallocated resources
    unallocated = _section(page, "unallocated")
    for status in report.UNALLOCATED_REASONS:
        row = unallocated.split(f'data-unallocated="{status}">', 1)[1].split("</tr>", 1)[0]
        shown = re.findall(r'<td class="num">([^<]*)</td>', row)[1]
        assert shown == report.money(by_status.get(status, Decimal("0.00"))), status
    shown = dict(re.findall(r'data-figure="(\w+)">([^<]*)<', unallocated))
    total = allocated + sum(by_status.values())
    assert shown["allocated"] == report.money(allocated) == report.money(headline["modeled_cost"])
    assert shown["unallocated"] == report.money(total - allocated)
    assert shown["total"] == report.money(total)
    assert shown["profit"] == report.money(headline["revenue"] - total)
    assert f"A further {report.money(total - allocated)} of modeled cost" in lede

    # the week's and the month's editions, from the command line; the first on a checkout
    # whose production state is gone (as after a plain `dbt build` and `pmcost publish`):
    # it parses the project for the published relations, once
    (built.target / "production" / report.SEMANTIC_MANIFEST).unlink()
    for kind, title in (("week", "Weekly report, 14 Nov to 20 Nov 2026"), ("month", "Monthly")):
        written = built.pmcost("report", "--target", "postgres", "--period", kind)
        assert written.returncode == 0, written.stdout + written.stderr
        parsed = "parsing the project for the published relations" in written.stdout
        assert parsed == (kind == "week"), written.stdout[-2000:]
        edition = folder / f"executive-{kind}.html"
        assert stat.S_IMODE(edition.stat().st_mode) == 0o600
        page = edition.read_text()
        assert title in page
        period = report.Period(kind, ANCHOR)
        _check_headline(built, page, period)
        _check_health(built, page, period)
        listed = _section(page, "anomalies")
        assert "Earlier Day Ltd" in listed  # the earlier day's publish
        assert f"{len(published) + 1} anomal" in listed

    # an earlier day's report: the unallocated cost is known for the marts' day only
    earlier_page = built.pmcost(
        "report", "--target", "postgres", "--as-of", earlier.isoformat(), "--out", str(tmp_path)
    )
    assert earlier_page.returncode == 0, earlier_page.stdout + earlier_page.stderr
    page = (tmp_path / earlier.isoformat() / "executive-day.html").read_text()
    assert "Known for the marts' day only" in _section(page, "unallocated")
    assert "A further" not in page.split('id="lede">', 1)[1].split("</p>", 1)[0]

    # a day outside the published history is refused with the range
    refused = built.pmcost("report", "--target", "postgres", "--as-of", "2020-01-01")
    assert refused.returncode == 2 and "the published history covers" in refused.stderr

    _opens_offline(day_report, tmp_path)
    _reads_only_the_days_it_shows(built, period)


def _opens_offline(page: Path, tmp_path: Path) -> None:
    """Headless Chromium: no console message, no request leaving the page, a drawn page."""
    browser = chromium()
    netlog, shot = tmp_path / "netlog.json", tmp_path / "report.png"
    opened = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            f"--log-net-log={netlog}",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr[-2000:]
    assert ":CONSOLE" not in opened.stderr, opened.stderr[-2000:]
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # the page's own requests carry its origin as initiator (a file's is "null"); the
    # browser's background services (updates, time) carry "not an origin"
    from_page = [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start
        and event.get("params", {}).get("initiator", "not an origin") != "not an origin"
    ]
    assert from_page == []
    assert shot.stat().st_size > 50_000  # charts and tables drawn, not a blank page


@pytest.mark.parametrize(
    ("day", "editions"),
    [
        (date(2026, 11, 20), ["day"]),  # a Friday
        (date(2026, 11, 23), ["day", "week"]),  # a Monday
        (date(2026, 12, 1), ["day", "month"]),  # the first, a Tuesday
        (date(2026, 6, 1), ["day", "week", "month"]),  # a Monday and the first
    ],
)
def test_a_refresh_writes_the_week_on_mondays_and_the_month_on_the_first(
    day: date, editions: list[str]
) -> None:
    assert report.editions_for(day) == editions


def test_periods_end_on_the_as_of_day_and_compare_with_the_one_before() -> None:
    assert report.Period("day", date(2026, 11, 20)).previous_end == date(2026, 11, 19)
    week = report.Period("week", date(2026, 11, 23))
    assert (week.start, week.previous_end) == (date(2026, 11, 17), date(2026, 11, 16))
    month = report.Period("month", date(2026, 3, 31))  # February is shorter
    assert (month.previous_end, month.start) == (date(2026, 2, 28), date(2026, 3, 1))
    assert report.Period("month", date(2026, 12, 1)).start == date(2026, 11, 2)


def test_a_mondays_editions_are_written_side_by_side_each_on_its_own_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The day's report on the refresh's connection, the week's and the month's at the same
    time on connections of their own; one that fails is named with its retry, the others
    are still written."""
    monday_the_first = date(2026, 6, 1)
    refresh_conn, opened = object(), []
    both_started = threading.Barrier(3, timeout=10)  # three editions at once, or it breaks

    @contextmanager
    def connect() -> Iterator[object]:
        own = object()
        opened.append(own)
        yield own

    def write_report(conn: object, *, period: str, **_: object) -> report.Written:
        both_started.wait()
        if period == "month":
            raise RuntimeError("the month's figures could not be read")
        assert (conn is refresh_conn) == (period == "day")
        return report.Written(tmp_path / f"{period}.html", period, monday_the_first, 0.1)

    monkeypatch.setattr(report, "write_report", write_report)
    said: list[str] = []
    written, problems = refresh.write_reports(
        refresh_conn,  # type: ignore[arg-type]
        monday_the_first,
        tmp_path,
        said.append,
        connect,  # type: ignore[arg-type]
    )
    assert written == [
        {"period": "day", "path": str(tmp_path / "day.html")},
        {"period": "week", "path": str(tmp_path / "week.html")},
    ]
    assert len(opened) == 2
    assert problems == [
        "the month's executive report could not be written (the month's figures could not be "
        "read); run `pmcost report --period month --as-of 2026-06-01` to retry"
    ]
    assert sorted(said) == [f"report: {tmp_path / p}.html (0.1 s)" for p in ("day", "week")]
