"""The docs site as a person sees it: served by dbt, rendered by headless Chromium.

The rendered DOM must show the lineage path application table -> staging -> intermediate ->
mart -> dashboard (each page's "Depends On" list), and a screenshot of the lineage graph is
saved under target/ for a human to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmcost.server import free_port

from .conftest import BIN, PROJECT, Database

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]
# (page, a node its "Depends On" list must show): the path source -> ... -> exposure
LINEAGE_PATH = [
    ("exposure/exposure.pmcost.executive_dashboard", "model.pmcost.executive_business_summary"),
    (
        "model/model.pmcost.executive_business_summary",
        "model.pmcost.int_tenant_subscriptions_daily",
    ),
    (
        "model/model.pmcost.int_tenant_subscriptions_daily",
        "model.pmcost.int_subscription_revenue_intervals",
    ),
    (
        "model/model.pmcost.int_subscription_revenue_intervals",
        "model.pmcost.stg_app__subscriptions",
    ),
    ("model/model.pmcost.stg_app__subscriptions", "source.pmcost.app.subscriptions"),
]


# how long a test waits for `make browser`, which `make test` runs beside the first tests
BROWSER_WAIT_SECONDS = 900


def chromium() -> str:
    """The browser `make browser` installs. Under `make test` it installs in the background
    while the first tests run, and $PMCOST_BROWSER_STATUS names the file its exit status is
    written to (whole: moved into place once written): wait for that file first."""
    status = os.environ.get("PMCOST_BROWSER_STATUS")
    if status:
        deadline = time.monotonic() + BROWSER_WAIT_SECONDS
        while not Path(status).is_file() and time.monotonic() < deadline:
            time.sleep(1)
        assert Path(status).is_file(), f"`make browser` took over {BROWSER_WAIT_SECONDS} s"
        assert Path(status).read_text().strip() == "0", "`make browser` failed"
    found = shutil.which("chromium")
    assert found, "chromium is not installed: run `make browser` (Debian's package, as root)"
    return found


@pytest.fixture(scope="module")
def docs_url(published_docs: Database) -> Iterator[str]:
    database = published_docs
    port = free_port()
    serving = subprocess.Popen(
        [
            str(BIN / "dbt"),
            "docs",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-browser",
            "--target",
            "prod",
        ],
        cwd=PROJECT,
        env=database.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert serving.poll() is None, "dbt docs serve exited"
            assert time.monotonic() < deadline, "dbt docs serve did not start"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        serving.terminate()
        serving.wait(timeout=30)


def _render(browser: str, url: str, profile: Path, *extra: str) -> str:
    result = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _depends_on(dom: str) -> set[str]:
    """The node ids linked from the page's rendered "Depends On" section."""
    rendered = re.sub(r"<script.*?</script>", "", dom, flags=re.S)  # templates live in scripts
    section = rendered.split("<h6>Depends On</h6>", 1)[1].split("</reference-list>", 1)[0]
    return set(re.findall(r'href="#!/\w+/([\w.]+)"', section))


def test_lineage_path_source_to_dashboard(docs_url: str, tmp_path: Path) -> None:
    browser = chromium()
    for page, parent in LINEAGE_PATH:
        dom = _render(browser, f"{docs_url}#!/{page}", tmp_path / "profile", "--dump-dom")
        assert parent in _depends_on(dom), page


def test_lineage_graph_screenshot(docs_url: str, tmp_path: Path) -> None:
    browser = chromium()
    target = PROJECT / "target"
    target.mkdir(exist_ok=True)
    shot = target / "docs-lineage.png"
    shot.unlink(missing_ok=True)
    _render(
        browser,
        f"{docs_url}#!/exposure/exposure.pmcost.executive_dashboard?g_v=1",
        tmp_path / "profile",
        "--window-size=1600,1000",
        f"--screenshot={shot}",
    )
    assert shot.is_file() and shot.stat().st_size > 20_000  # a drawn graph, not a blank page
