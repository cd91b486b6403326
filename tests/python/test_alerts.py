"""Anomaly alerts: a refresh that publishes new anomalies posts them to the operator's webhook,
each exactly once across retries and re-runs of the day; a delivery that keeps failing
leaves the publish and exits with its own code; the webhook URL is never shown."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pmcost.alerts import ALERTS_FAILED, WEBHOOK_VARIABLE

from .conftest import ANCHOR, PROJECT, Database
from .test_publication import summary

# the day after the one the suite's built database is published for: a tenant's cost that
# jumps today stands out against the days before it
DAY = (ANCHOR + timedelta(days=1)).isoformat()


class Receiver:
    """A webhook on 127.0.0.1 that answers 500 to its first `failures` posts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.posted: list[dict] = []  # every post's message, answered or not
        self.delivered: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                receiver.posted.append(json.loads(body))
                if receiver.attempts <= receiver.failures:
                    self.send_response(500)
                else:
                    receiver.delivered.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        # a path like a real webhook's: its token is the secret
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0SECRETTOKEN42"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    webhook = Receiver(failures=2)
    yield webhook
    webhook.server.shutdown()


def _make_cost_jump(database: Database, rank: int) -> str:
    """A tenant whose VPS cost jumps on the as-of day: an anomaly (cost_moved) when refreshed."""
    tenant = database.query(
        "select tenant_id::text from analytics.executive_business_summary "
        "where infrastructure_costs > 0 order by tenant_id offset %s limit 1",
        (rank,),
    )[0][0]
    database.query(
        "update vps_instances set approximate_cost = 999 where tenant_id = %s "
        "and lower(trim(status)) = 'active' returning 1",
        (tenant,),
    )
    return tenant


def _refresh(database: Database, env: dict[str, str]):
    # the jump moves the cost totals past the publish's guard: accepted, as an operator would
    return database.pmcost(
        "refresh", "--target", "postgres", "--as-of", DAY, "--accept-changes", env=env
    )


def test_each_anomaly_is_delivered_once_and_a_failed_delivery_keeps_the_publish(
    built: Database, receiver: Receiver
) -> None:
    env = {
        WEBHOOK_VARIABLE: receiver.url,
        "PMCOST_ALERT_ATTEMPTS": "3",
        "PMCOST_ALERT_BACKOFF_SECONDS": "0.05",
    }
    tenant = _make_cost_jump(built, 0)
    first = _refresh(built, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    # two failures, then delivered once
    assert receiver.attempts == 3 and len(receiver.delivered) == 1
    sent = receiver.delivered[0]
    assert tenant in sent["text"] and "cost_moved" in sent["text"]
    assert "not provider invoices" in sent["text"] and sent["blocks"]
    anomalies = "select tenant_id::text, anomaly_type from analytics.tenant_cost_anomalies"
    published = built.query(anomalies)
    recorded = built.query(
        "select tenant_id::text, anomaly_type from analytics_publication.alerts_sent"
    )
    assert sorted(published) == sorted(recorded) and (tenant, "cost_moved") in recorded
    assert summary(built)["alerts"]["delivered"] == len(published)
    assert summary(built)["alerts"]["attempts"] == 3

    # the same day again, with a new anomaly, and a webhook that now keeps failing: no post
    # names the anomaly already delivered; the run publishes all the same, exits with its own
    # code and last.json says so (the next refresh sends the new one)
    receiver.failures = receiver.attempts + 10
    posts = len(receiver.posted)
    runs = built.query("select count(*) from analytics_publication.published_runs")[0][0]
    other = _make_cost_jump(built, 1)
    failed = _refresh(built, env)
    assert failed.returncode == ALERTS_FAILED, failed.stdout[-3000:] + failed.stderr
    retried = receiver.posted[posts:]
    assert len(retried) == 3 and len(receiver.delivered) == 1
    assert all(other in post["text"] and tenant not in post["text"] for post in retried)
    assert "could not be delivered" in failed.stderr and WEBHOOK_VARIABLE in failed.stderr
    assert built.query("select count(*) from analytics_publication.published_runs")[0][0] == (
        runs + 1
    )
    assert (other, "cost_moved") in built.query(anomalies)
    assert (other, "cost_moved") not in built.query(
        "select tenant_id::text, anomaly_type from analytics_publication.alerts_sent"
    )
    last = summary(built)
    assert last["outcome"] == "published_alerts_failed" and last["exit_code"] == ALERTS_FAILED
    assert last["alerts"]["failed"] is True and last["alerts"]["error"] == "HTTP 500"

    # the URL is a secret: in no output, no artefact, no log
    secret = "T0SECRETTOKEN42"
    for result in (first, failed):
        assert secret not in result.stdout + result.stderr
    for folder in (built.work_dir / "target", built.work_dir / "logs", PROJECT / "logs"):
        for path in folder.rglob("*") if folder.is_dir() else []:
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert secret.encode() not in path.read_bytes(), path


def test_a_long_list_names_the_first_hundred_and_counts_the_rest() -> None:
    from decimal import Decimal

    from pmcost.alerts import LISTED, Anomaly, message

    many = [
        Anomaly(f"t{i:03}", None, "cost_moved", DAY, Decimal(2), Decimal(1), Decimal(1), None, None)
        for i in range(LISTED + 7)
    ]
    text = str(message(many)["text"])
    assert f"t{LISTED - 1:03}" in text and f"t{LISTED:03}" not in text
    assert "and 7 more" in text and text.startswith(f"PenguinMails cost anomalies for {DAY}: 107")


def test_a_bad_alert_setting_is_named_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pmcost import alerts
    from pmcost.errors import UsageError

    monkeypatch.setenv(WEBHOOK_VARIABLE, "https://hooks.example.invalid/T0SECRETTOKEN42")
    monkeypatch.setenv("PMCOST_ALERT_ATTEMPTS", "three")
    with pytest.raises(UsageError, match="PMCOST_ALERT_ATTEMPTS='three'") as raised:
        alerts.send(None, "analytics", say=print)  # type: ignore[arg-type] - not reached
    assert "T0SECRETTOKEN42" not in str(raised.value)
    monkeypatch.setenv(WEBHOOK_VARIABLE, "ftp://hooks.example.invalid/T0SECRETTOKEN42")
    with pytest.raises(UsageError, match="must be an http") as raised:
        alerts.send(None, "analytics", say=print)  # type: ignore[arg-type]
    assert "T0SECRETTOKEN42" not in str(raised.value)
