"""Anomaly alerts: after a refresh publishes, the anomalies not yet sent go to the operator's
webhook (`PMCOST_ALERT_WEBHOOK`) as one Slack-compatible message.

- Each anomaly (tenant, kind, as-of day) is sent once: what was delivered is recorded in
  `<schema>_publication.alerts_sent` in the transaction that follows the webhook's 2xx
  answer, and a retry or a re-run of the same day sends only what is not recorded.
- A delivery is tried up to `PMCOST_ALERT_ATTEMPTS` times (default 4), waiting
  `PMCOST_ALERT_BACKOFF_SECONDS` (default 2) and twice as long after each failure.
- The URL is a secret: it is read from the environment only, and never printed, logged or
  written (messages name the variable, not its value).
- A delivery that still fails leaves the publish as it is: the refresh says so and exits
  with its own code (ALERTS_FAILED), and the anomalies are sent by the next run.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from pmcost import publish
from pmcost.errors import PmcostError, UsageError

WEBHOOK_VARIABLE = "PMCOST_ALERT_WEBHOOK"
SENT_TABLE = "alerts_sent"
ALERTS_FAILED = 5  # the refresh's exit code: published, the alerts not delivered
LISTED = 100  # anomalies listed one per line in a message; the others by count
Say = Callable[[str], None]


class AlertDeliveryError(PmcostError):
    exit_code = ALERTS_FAILED


@dataclass(frozen=True)
class Anomaly:
    tenant_id: str
    company_name: str | None
    anomaly_type: str
    as_of_date: str
    current_value: Decimal | None
    baseline_value: Decimal | None
    relative_change: Decimal | None
    previous_status: str | None
    current_status: str | None

    def line(self) -> str:
        who = f"{self.company_name} ({self.tenant_id})" if self.company_name else self.tenant_id
        if self.anomaly_type == "health_status_dropped":
            return f"{who}: health status {self.previous_status} -> {self.current_status}"
        change = f"{self.relative_change * 100:+.1f}%" if self.relative_change is not None else ""
        what = "modeled cost" if self.anomaly_type == "cost_moved" else "cost per email"
        return (
            f"{who}: {what} {self.current_value} against a trailing average of "
            f"{self.baseline_value} ({change})"
        )


@dataclass
class Outcome:
    """What the alert step did, for last.json (never the URL)."""

    pending: int = 0
    delivered: int = 0
    attempts: int = 0
    error: str = ""
    skipped: str = ""

    @property
    def failed(self) -> bool:
        return self.pending > 0 and self.delivered == 0

    def failure(self) -> AlertDeliveryError:
        return AlertDeliveryError(
            f"published, but {self.pending} anomaly alert(s) could not be delivered to the "
            f"webhook in {WEBHOOK_VARIABLE} after {self.attempts} attempt(s) ({self.error}); "
            "the published tables stand, and the next refresh sends them"
        )


def sent_table(published_schema: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(
        sql.Identifier(publish.audit_schema(published_schema)), sql.Identifier(SENT_TABLE)
    )


def ensure_sent_table(conn: psycopg.Connection, published_schema: str) -> None:
    conn.execute(
        sql.SQL("create schema if not exists {}").format(
            sql.Identifier(publish.audit_schema(published_schema))
        )
    )
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                tenant_id uuid not null,
                anomaly_type text not null,
                as_of_date date not null,
                sent_at timestamptz not null default now(),
                primary key (tenant_id, anomaly_type, as_of_date)
            )
            """
        ).format(sent_table(published_schema))
    )
    conn.execute(
        sql.SQL("comment on table {} is {}").format(
            sent_table(published_schema),
            sql.Literal(
                "One row per anomaly delivered to the alert webhook (PMCOST_ALERT_WEBHOOK): "
                "a retry or a re-run of the day sends only what is not here. Written by "
                "pmcost refresh."
            ),
        )
    )


def pending(conn: psycopg.Connection, published_schema: str) -> list[Anomaly]:
    """The published anomalies of the marts' day that were not delivered yet."""
    ensure_sent_table(conn, published_schema)
    rows = conn.execute(
        sql.SQL(
            """
            select
                a.tenant_id::text, s.company_name, a.anomaly_type, a.as_of_date::text,
                a.current_value, a.baseline_value, a.relative_change,
                a.previous_status, a.current_status
            from {anomalies} as a
            left join {summary} as s on s.tenant_id = a.tenant_id
            where not exists (
                select 1 from {sent} as sent
                where
                    sent.tenant_id = a.tenant_id
                    and sent.anomaly_type = a.anomaly_type
                    and sent.as_of_date = a.as_of_date
            )
            order by a.anomaly_type, a.tenant_id
            """
        ).format(
            anomalies=sql.SQL("{}.tenant_cost_anomalies").format(sql.Identifier(published_schema)),
            summary=sql.SQL("{}.executive_business_summary").format(
                sql.Identifier(published_schema)
            ),
            sent=sent_table(published_schema),
        )
    ).fetchall()
    return [Anomaly(*row) for row in rows]


def message(anomalies: list[Anomaly]) -> dict[str, object]:
    """One Slack-compatible message (`text`, and `blocks` for clients that show them)."""
    days = sorted({anomaly.as_of_date for anomaly in anomalies})
    title = f"PenguinMails cost anomalies for {', '.join(days)}: {len(anomalies)}"
    lines = [f"- {anomaly.anomaly_type}: {anomaly.line()}" for anomaly in anomalies[:LISTED]]
    if len(anomalies) > LISTED:  # a chat message is read, not scrolled: the rest by count
        lines.append(
            f"- and {len(anomalies) - LISTED} more: see tenant_cost_anomalies in the marts"
        )
    footer = "Modeled infrastructure costs, not provider invoices."
    return {
        "text": "\n".join([title, *lines, footer]),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
        ],
    }


def _post(url: str, body: bytes, timeout: float) -> None:
    request = urllib.request.Request(  # noqa: S310 - the operator's webhook, http(s) only
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not 2xx", response.headers, None)


def _reason(error: Exception) -> str:
    """What went wrong, without the URL (an HTTPError's text is its status; a URLError's
    its reason)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, OSError) and reason.strerror:
        return f"{type(reason).__name__}: {reason.strerror}"
    return type(reason).__name__ if isinstance(reason, Exception) else "network error"


def _setting(name: str, default: str) -> float:
    raw = os.environ.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise UsageError(f"{name}={raw!r} is not a number of 0 or more; unset it for {default}")
    return value


def check_settings() -> str:
    """The webhook URL ('' when unset) once its settings are checked: a refresh calls this
    before it writes anything, so a malformed setting never meets a published run."""
    url = os.environ.get(WEBHOOK_VARIABLE, "").strip()
    if not url:
        return ""
    if not url.startswith(("https://", "http://")):
        raise UsageError(f"{WEBHOOK_VARIABLE} must be an http(s) URL; no alert was sent")
    _setting("PMCOST_ALERT_ATTEMPTS", "4")
    _setting("PMCOST_ALERT_BACKOFF_SECONDS", "2")
    return url


def send(conn: psycopg.Connection, published_schema: str, say: Say) -> Outcome:
    """The alert step of a refresh, after the publish (and of the Dagster job's publish).
    A delivery that fails every attempt comes back as `Outcome.failed`: the caller ends
    with `Outcome.failure()` once its other steps are done."""
    outcome = Outcome()
    url = check_settings()
    if not url:
        outcome.skipped = f"{WEBHOOK_VARIABLE} is not set"
        return outcome
    attempts = max(1, int(_setting("PMCOST_ALERT_ATTEMPTS", "4")))
    wait = _setting("PMCOST_ALERT_BACKOFF_SECONDS", "2")
    anomalies = pending(conn, published_schema)
    outcome.pending = len(anomalies)
    if not anomalies:
        say("alerts: no new anomaly to send")
        return outcome
    body = json.dumps(message(anomalies), default=str).encode()
    for attempt in range(1, attempts + 1):
        outcome.attempts = attempt
        try:
            _post(url, body, timeout=10.0)
        except (urllib.error.URLError, OSError, ValueError) as failed:
            outcome.error = _reason(failed)
            if attempt == attempts:
                say(f"alerts: attempt {attempt} failed ({outcome.error}); giving up")
                return outcome
            say(f"alerts: attempt {attempt} failed ({outcome.error}); retrying in {wait:g} s")
            time.sleep(wait)
            wait *= 2
            continue
        with conn.transaction():
            for anomaly in anomalies:
                conn.execute(
                    sql.SQL(
                        "insert into {} (tenant_id, anomaly_type, as_of_date) values "
                        "(%s, %s, %s) on conflict do nothing"
                    ).format(sent_table(published_schema)),
                    (anomaly.tenant_id, anomaly.anomaly_type, anomaly.as_of_date),
                )
        outcome.delivered = len(anomalies)
        outcome.error = ""
        say(f"alerts: {len(anomalies)} anomaly alert(s) delivered to {WEBHOOK_VARIABLE}")
        return outcome
    return outcome
