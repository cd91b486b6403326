"""Demo Finance files: a provider invoice and a ledger for the anchor's month and the one
before, written from the modeled resource costs (COSTS_MODEL, in the schema the caller
names) with planted discrepancies, so the reconciliation marts show every status. Also a
few record values (approximate_cost) that drift from the price list, for the drift report.

Planted, in the later month: a billed VPS the application does not know, a VPS the
application holds stopped that is still billed, a promotional credit line on one VPS, a
dedicated IP with no charge, a line in EUR, and a VPS ledger total above the invoices.
"""

from __future__ import annotations

import calendar
import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql

from pmcost import finance

PROVIDER = "Hostwinds"
UNKNOWN_HOST = "hw-unlisted-0001"
PROMOTION_CREDIT = Decimal("-5.00")
LEDGER_SURPLUS = Decimal("25.00")  # the later month's VPS ledger total over its invoices
SHARED_DATABASE = Decimal("180.00")  # NileDB, a ledger-only overhead
BACKUP_STORAGE = Decimal("12.00")  # an `other` line each month
# the model the files are written from: one row per resource and cost interval
COSTS_MODEL = "resource_cost_intervals"


@dataclass(frozen=True)
class DemoFiles:
    invoices: Path
    ledger: Path


def _months(anchor: date) -> list[date]:
    current = anchor.replace(day=1)
    previous = (current.replace(day=1) - date.resolution).replace(day=1)
    return [previous, current]


def _month_end(month: date) -> date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def set_demo_record_values(conn: psycopg.Connection, *, marts_schema: str, app_schema: str) -> None:
    """Finance's record values (approximate_cost) on three resources, from the modeled costs
    in `marts_schema`: one VPS at its list price, one VPS $3.00 above it (a stale record) and
    one dedicated IP at $5.25 against the $4.99 constant; the last two drift."""
    intervals = sql.Identifier(marts_schema, COSTS_MODEL)
    picked = conn.execute(
        sql.SQL(
            "select resource_id, reference_monthly_cost from {} where resource_type = 'vps' "
            "and cost_source = 'price_list' and valid_to_date = 'infinity' "
            "order by resource_ref limit 2"
        ).format(intervals)
    ).fetchall()
    ip = conn.execute(
        sql.SQL(
            "select resource_id from {} where resource_type = 'smtp_ip' "
            "and cost_source = 'default_constant' and valid_to_date = 'infinity' "
            "order by resource_ref desc limit 1"
        ).format(intervals)
    ).fetchone()
    with conn.transaction():
        for (vps_id, price), extra in zip(picked, (Decimal("0.00"), Decimal("3.00")), strict=False):
            conn.execute(
                sql.SQL("update {} set approximate_cost = %s where id = %s").format(
                    sql.Identifier(app_schema, "vps_instances")
                ),
                (Decimal(price) + extra, vps_id),
            )
        if ip is not None:
            conn.execute(
                sql.SQL("update {} set approximate_cost = 5.25 where id = %s").format(
                    sql.Identifier(app_schema, "smtp_ip_addresses")
                ),
                (ip[0],),
            )


class _Invoice:
    """One month's invoice lines and the USD total per ledger category."""

    def __init__(self, month: date) -> None:
        self.month, self.end = month, _month_end(month)
        self.rows: list[list[str]] = []
        self.totals = {category: Decimal("0.00") for category in finance.CATEGORIES}

    def line(
        self, resource_type: str, ref: str, text: str, amount: Decimal, currency: str = "USD"
    ) -> None:
        self.rows.append(
            [
                PROVIDER,
                f"HW-{self.month:%Y%m}",
                self.month.isoformat(),
                self.month.isoformat(),
                self.end.isoformat(),
                resource_type,
                ref,
                text,
                f"{amount:.2f}",
                currency,
            ]
        )
        if currency == "USD":
            self.totals[resource_type] += amount


def write(
    conn: psycopg.Connection, out_dir: Path, anchor: date, *, marts_schema: str, app_schema: str
) -> DemoFiles:
    """Write the invoice and ledger CSVs for the anchor's month and the month before."""
    out_dir.mkdir(parents=True, exist_ok=True)
    intervals = sql.Identifier(marts_schema, COSTS_MODEL)
    stopped = conn.execute(
        sql.SQL(
            "select hostname from {} where lower(trim(status)) <> 'active' and hostname is not null"
            " order by hostname limit 1"
        ).format(sql.Identifier(app_schema, "vps_instances"))
    ).fetchone()
    invoices: list[_Invoice] = []
    months = _months(anchor)
    for month in months:
        invoice = _Invoice(month)
        later = month == months[-1]
        resources = conn.execute(
            sql.SQL(
                "select resource_type, resource_ref, monthly_cost from {} "
                "where monthly_cost > 0 and resource_ref is not null "
                "and valid_from_date <= %s and %s < valid_to_date "
                "order by resource_type desc, resource_ref"
            ).format(intervals),
            (invoice.end, invoice.end),
        ).fetchall()
        skipped_ip = False
        for index, (resource_type, ref, cost) in enumerate(resources):
            if later and resource_type == "smtp_ip" and not skipped_ip:
                skipped_ip = True  # planted: a dedicated IP the provider did not charge
                continue
            kind = "VPS" if resource_type == "vps" else "Dedicated IP"
            invoice.line(resource_type, ref, f"{kind} {ref}, {month:%B %Y}", Decimal(cost))
            if later and index == 0:
                invoice.line(resource_type, ref, "Promotional credit", PROMOTION_CREDIT)
        invoice.line("other", "", "Backup storage", BACKUP_STORAGE)
        if later:
            stopped_host = stopped[0] if stopped else None
            for host, amount in ((UNKNOWN_HOST, "27.99"), (stopped_host, "8.99")):
                if host is not None:  # planted: unknown to the application; held stopped
                    invoice.line("vps", host, f"VPS {host}, {month:%B %Y}", Decimal(amount))
            invoice.line("other", "", "Control panel licence", Decimal("9.00"), "EUR")
        invoice.totals["shared_database"] = SHARED_DATABASE
        if later:
            invoice.totals["vps"] += LEDGER_SURPLUS
        invoices.append(invoice)

    files = DemoFiles(out_dir / "demo_invoice_lines.csv", out_dir / "demo_ledger.csv")
    ledger_rows = [
        [f"{invoice.month:%Y-%m}", category, f"{invoice.totals[category]:.2f}", "USD"]
        for invoice in invoices
        for category in finance.CATEGORIES
    ]
    invoice_rows = [row for invoice in invoices for row in invoice.rows]
    for path, header, rows in (
        (files.invoices, finance.INVOICE_COLUMNS, invoice_rows),
        (files.ledger, finance.LEDGER_COLUMNS, ledger_rows),
    ):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    return files
