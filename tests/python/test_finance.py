"""Finance's files: validation, all-or-nothing and idempotent loads, streaming, and the
reconciliation of the demo's planted discrepancies."""

from __future__ import annotations

import calendar
import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from pmcost import demo_finance, finance

from .conftest import ANCHOR, Database

HEADER = ",".join(finance.INVOICE_COLUMNS)
GOOD = "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,vps,t00001-mx1,VPS,14.99,USD"


def _write(path: Path, *lines: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def _count(database: Database, table: str) -> int:
    return database.query(f"select count(*) from finance.{table}")[0][0]


def _load(database: Database, path: Path, kind: str = "invoices") -> finance.LoadResult:
    with database.connect() as conn:
        loader = finance.load_invoices if kind == "invoices" else finance.load_ledger
        return loader(conn, path, say=lambda _message: None)


BAD_INVOICE_LINES = {
    "Hostwinds,HW-1,2026-11-31,2026-11-01,2026-11-30,vps,h1,x,1.00,USD": "not a calendar date",
    "Hostwinds,HW-1,01/11/2026,2026-11-01,2026-11-30,vps,h1,x,1.00,USD": "is not a date",
    "Hostwinds,HW-1,2026-11-01,2026-11-30,2026-11-01,vps,h1,x,1.00,USD": "is not after",
    "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,server,h1,x,1.00,USD": "resource_type",
    "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,vps,,x,1.00,USD": "resource_ref is empty",
    "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,smtp_ip,10.0.0.300,x,1.00,USD": "not an IP",
    "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,vps,h1,x,1.005,USD": "at most 2 decimals",
    'Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,vps,h1,x,"1,00",USD': "with a dot",
    "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,vps,h1,x,1.00,usd": "3-letter ISO code",
    "Hostwinds,,2026-11-01,2026-11-01,2026-11-30,vps,h1,x,1.00,USD": "invoice_id is empty",
    "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,vps,h1,1.00,USD": "expected 10 fields",
}


def test_every_bad_invoice_line_is_named_and_nothing_is_loaded(
    database: Database, tmp_path: Path
) -> None:
    lines = [GOOD, *BAD_INVOICE_LINES]
    path = _write(tmp_path / "invoice.csv", *lines)
    with pytest.raises(finance.LoadRejected) as rejected:
        _load(database, path)
    message = str(rejected.value)
    assert "nothing was loaded" in message and f"{len(BAD_INVOICE_LINES)} bad line(s)" in message
    for number, reason in enumerate(BAD_INVOICE_LINES.values(), start=3):  # header 1, good 2
        assert f"line {number}: " in message, number
        assert any(
            f"line {number}: " in problem and reason in problem
            for problem in rejected.value.problems
        ), (number, reason, rejected.value.problems)
    assert _count(database, "invoice_lines") == 0 and _count(database, "loads") == 0


def test_rules_across_lines_and_the_header(database: Database, tmp_path: Path) -> None:
    two_dates = _write(
        tmp_path / "dates.csv",
        GOOD,
        "Hostwinds,HW-1,2026-11-02,2026-11-01,2026-11-30,smtp_ip,10.0.0.1,IP,4.99,USD",
    )
    with pytest.raises(finance.LoadRejected, match="lines 2, 3: invoice HW-1 of Hostwinds"):
        _load(database, two_dates)
    wrong_header = _write(tmp_path / "header.csv", GOOD, header="provider,invoice,amount")
    with pytest.raises(finance.LoadRejected, match="line 1: the header must be provider,"):
        _load(database, wrong_header)
    empty = _write(tmp_path / "empty.csv")
    with pytest.raises(finance.LoadRejected, match="no lines"):
        _load(database, empty)
    ledger = _write(
        tmp_path / "ledger.csv",
        "2026-11,vps,10.00,USD",
        "2026-13,vps,10.00,USD",
        "2026-11,hosting,10.00,USD",
        "2026-11,vps,12.00,USD",
        header=",".join(finance.LEDGER_COLUMNS),
    )
    with pytest.raises(finance.LoadRejected) as rejected:
        _load(database, ledger, "ledger")
    problems = "\n".join(rejected.value.problems)
    assert "line 3: month '2026-13' is not a calendar month" in problems
    assert "line 4: category 'hosting' is not one of" in problems
    duplicate = _write(
        tmp_path / "duplicate.csv",
        "2026-11,vps,10.00,USD",
        "2026-11,vps,12.00,USD",
        header=",".join(finance.LEDGER_COLUMNS),
    )
    with pytest.raises(finance.LoadRejected, match="lines 2, 3: 2026-11 vps USD appears more"):
        _load(database, duplicate, "ledger")
    assert _count(database, "ledger_entries") == 0


def test_same_file_twice_changes_nothing_and_a_corrected_invoice_replaces_its_lines(
    database: Database, tmp_path: Path
) -> None:
    first = _write(
        tmp_path / "november.csv",
        GOOD,
        "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,smtp_ip,10.0.0.1,IP,4.99,USD",
        "Hostwinds,HW-2,2026-11-01,2026-11-01,2026-11-30,vps,t00002-mx1,VPS,25.19,USD",
    )
    loaded = _load(database, first)
    assert loaded.changed and loaded.rows == 3 and loaded.keys == 2
    again = _load(database, first)
    assert not again.changed and "nothing changed" in again.describe()
    assert _count(database, "invoice_lines") == 3 and _count(database, "loads") == 1

    corrected = _write(
        tmp_path / "november-corrected.csv",
        "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,vps,t00001-mx1,VPS,13.99,USD",
    )
    replaced = _load(database, corrected)
    assert replaced.changed and replaced.replaced_rows == 2
    rows = database.query(
        "select invoice_id, resource_ref, amount from finance.invoice_lines order by invoice_id"
    )
    assert rows == [
        ("HW-1", "t00001-mx1", Decimal("13.99")),
        ("HW-2", "t00002-mx1", Decimal("25.19")),
    ]
    loads = database.query(
        "select file_name, row_count, length(checksum_sha256) from finance.loads order by load_id"
    )
    assert loads == [("november.csv", 3, 64), ("november-corrected.csv", 1, 64)]

    ledger = _write(
        tmp_path / "ledger.csv",
        "2026-10,vps,10.00,USD",
        "2026-11,vps,20.00,USD",
        header=",".join(finance.LEDGER_COLUMNS),
    )
    _load(database, ledger, "ledger")
    november = _write(
        tmp_path / "ledger-nov.csv",
        "2026-11,smtp_ip,5.00,USD",
        header=",".join(finance.LEDGER_COLUMNS),
    )
    _load(database, november, "ledger")  # replaces the whole month, keeps October
    assert database.query(
        "select to_char(ledger_month, 'YYYY-MM'), category, amount from finance.ledger_entries "
        "order by 1, 2"
    ) == [("2026-10", "vps", Decimal("10.00")), ("2026-11", "smtp_ip", Decimal("5.00"))]


def test_a_large_file_streams_with_progress(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "large.csv"
    lines = 250_000
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(finance.INVOICE_COLUMNS)
        for number in range(lines):
            invoice = f"HW-{number // 1000}"
            period = ["2026-11-01", "2026-11-01", "2026-11-30"]
            writer.writerow(
                ["Hostwinds", invoice, *period, "vps", f"h-{number}", "VPS", "8.99", "USD"]
            )
    messages: list[str] = []
    with database.connect() as conn:
        result = finance.load_invoices(conn, path, say=messages.append)
    assert result.rows == lines and result.keys == 250
    progress = [message.split(": ")[1] for message in messages]
    assert progress == ["100,000 lines read", "200,000 lines read"]
    assert database.query("select count(*), sum(amount) from finance.invoice_lines") == [
        (lines, Decimal("8.99") * lines)
    ]


def test_the_cli_rejects_a_bad_file_with_its_lines(database: Database, tmp_path: Path) -> None:
    bad = "Hostwinds,HW-1,2026-11-01,2026-11-01,2026-11-30,vps,h,x,1.5.0,USD"
    path = _write(tmp_path / "bad.csv", GOOD, bad)
    result = database.pmcost("invoices", "load", str(path))
    assert result.returncode == 1
    assert "bad.csv: rejected, nothing was loaded (1 bad line(s))" in result.stderr
    assert "line 3: amount '1.5.0'" in result.stderr
    good = _write(tmp_path / "good.csv", GOOD)
    result = database.pmcost("invoices", "load", str(good), check=True)
    assert "loaded 1 line(s), 1 invoice(s)" in result.stdout and "pmcost refresh" in result.stdout


def _demo_lines(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_planted_discrepancies_come_out_with_their_status_and_amounts(
    built: Database, tmp_path: Path
) -> None:
    files = built.load_demo_finance(tmp_path)
    result = built.build()
    assert "WARN 1 ledger_matches_invoices_within_threshold" in result.stdout

    later = date(ANCHOR.year, ANCHOR.month, 1)
    period_end = date(ANCHOR.year, ANCHOR.month, calendar.monthrange(ANCHOR.year, ANCHOR.month)[1])
    lines = [line for line in _demo_lines(files.invoices) if line["period_start"] == str(later)]
    invoiced: dict[tuple[str, str], Decimal] = {}
    for line in lines:
        if line["resource_type"] != "other" and line["currency"] == "USD":
            key = (line["resource_type"], line["resource_ref"])
            invoiced[key] = invoiced.get(key, Decimal("0")) + Decimal(line["amount"])

    def row(resource_ref: str) -> tuple:
        found = built.query(
            "select reconciliation_status, modeled_cost, invoiced_amount, variance, tenant_id "
            "from analytics.invoice_reconciliation_by_resource "
            "where billing_month = %s and resource_ref = %s",
            (later, resource_ref),
        )
        assert len(found) == 1, resource_ref
        return found[0]

    def modeled_on_period_end(resource_ref: str) -> Decimal:
        return built.query(
            "select sum(monthly_cost) from analytics.resource_cost_intervals "
            "where resource_ref = %s and valid_from_date <= %s and %s < valid_to_date",
            (resource_ref, period_end, period_end),
        )[0][0]

    unknown = row(demo_finance.UNKNOWN_HOST)
    assert unknown == (
        "invoiced_not_modeled",
        Decimal("0.00"),
        Decimal("27.99"),
        Decimal("27.99"),
        None,
    )
    stopped_host = built.query(
        "select hostname from public.vps_instances where lower(trim(status)) <> 'active' "
        "and hostname is not null order by hostname limit 1"
    )[0][0]
    stopped = row(stopped_host)
    assert stopped[0] == "invoiced_not_modeled" and stopped[2] == Decimal("8.99")
    assert stopped[4] is not None  # known to the application: its tenant is shown

    promoted = next(
        line["resource_ref"] for line in lines if line["description"] == "Promotional credit"
    )
    status, modeled, amount, variance, _tenant = row(promoted)
    assert status == "amount_mismatch"
    assert amount == invoiced[("vps", promoted)] and modeled == modeled_on_period_end(promoted)
    assert variance == amount - modeled

    charged_ips = {ref for kind, ref in invoiced if kind == "smtp_ip"}
    missing = built.query(
        "select resource_ref, modeled_cost, variance "
        "from analytics.invoice_reconciliation_by_resource "
        "where billing_month = %s and reconciliation_status = 'modeled_not_invoiced'",
        (later,),
    )
    assert len(missing) == 1 and missing[0][0] not in charged_ips
    assert missing[0][1] == modeled_on_period_end(missing[0][0]) > 0
    assert missing[0][2] == -missing[0][1]

    monthly = {
        category: (unexplained, ledger, non_usd)
        for category, unexplained, ledger, non_usd in built.query(
            "select category, unexplained_variance, ledger_total, non_usd_invoice_lines "
            "from analytics.invoice_reconciliation_monthly where billing_month = %s",
            (later,),
        )
    }
    assert monthly["vps"][0] == demo_finance.LEDGER_SURPLUS
    assert monthly["smtp_ip"][0] == Decimal("0.00")
    assert monthly["shared_database"] == (None, demo_finance.SHARED_DATABASE, 0)
    assert monthly["other"][2] == 1  # the EUR line: reported, not converted

    drift = built.query(
        "select resource_type, drift from analytics.approximate_cost_drift order by resource_type"
    )
    assert drift == [("smtp_ip", Decimal("0.26")), ("vps", Decimal("3.00"))]

    # Finance's data: analysts read it, the application service does not
    with built.connect() as conn:
        conn.execute("set role business_analysts")
        margin = conn.execute("select count(*) from analytics.tenant_invoice_margin").fetchone()
        assert margin is not None and margin[0] > 0
    with built.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("set role application_service")
        conn.execute("select count(*) from analytics.invoice_reconciliation_by_resource")
