"""SIGTERM to `pmcost refresh` or `pmcost docs`: the dbt child stops first, then pmcost exits.

Finding 4: SIGTERM (what `kill PID`, Python's subprocess and many supervisors send) ended
pmcost but left its `dbt build` running and released the refresh lock, so a second refresh
ran alongside it. The same for `pmcost docs` and its server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from pmcost.refresh import REFRESH_LOCK
from pmcost.server import free_port
from pmcost.signals import Interrupted, SignalGuard, child_processes, is_alive

from .conftest import ANCHOR, BIN, PROJECT, Database
from .test_publication import fingerprint


def _wait_for_child(parent: subprocess.Popen[str], needle: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, cmdline in child_processes(parent.pid):
            if needle in cmdline:
                return pid
        assert parent.poll() is None, parent.communicate()
        time.sleep(0.1)
    raise AssertionError(f"no child running {needle!r} after {timeout}s")


def _wait_for_models(database: Database, parent: subprocess.Popen[str], timeout: float) -> None:
    """Until dbt has sent a model's SQL (its query comments name the node)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        building = database.query(
            "select count(*) from pg_stat_activity where datname = current_database() "
            "and query like %s",
            ('%"node_id": "model.pmcost.%',),
        )
        if building[0][0]:
            return
        assert parent.poll() is None, parent.communicate()
        time.sleep(0.1)
    raise AssertionError(f"dbt built no model within {timeout}s")


def _start(database: Database, *args: str) -> subprocess.Popen[str]:
    database.seed_parse_states()  # as Database.pmcost: dbt starts from the kept parse
    return subprocess.Popen(
        [str(BIN / "pmcost"), *args],
        cwd=PROJECT,
        env=database.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a signal to the test's group never reaches it
    )


def test_sigterm_to_refresh_stops_dbt_keeps_the_lock_until_then_publishes_nothing(
    built: Database,
) -> None:
    before = fingerprint(built)
    built.query("update vps_instances set approximate_cost = 650 returning 1")
    refresh = _start(built, "refresh", "--target", "postgres", "--as-of", ANCHOR.isoformat())
    try:
        dbt = _wait_for_child(refresh, "pmcost.dbt_worker", timeout=60)  # the refresh's dbt
        _wait_for_models(built, refresh, timeout=60)
        time.sleep(1)  # inside the build
        os.kill(refresh.pid, signal.SIGTERM)  # the parent only, as `kill PID` does
        time.sleep(0.5)
        if is_alive(dbt):  # dbt still stopping: the refresh lock must still be held
            held = built.query(
                "select count(*) from pg_locks where locktype = 'advisory' "
                "and classid = 1886221 and objid = 2 and granted and database = "
                "(select oid from pg_database where datname = current_database())"
            )
            assert held == [(1,)]
        out, err = refresh.communicate(timeout=120)
    finally:
        if refresh.poll() is None:
            os.killpg(refresh.pid, signal.SIGKILL)
    assert refresh.returncode == 143, out[-2000:] + err
    assert "interrupted by SIGTERM" in err and "nothing was published" in err
    assert not is_alive(dbt)
    assert fingerprint(built) == before
    # the lock went with pmcost: the next refresh takes it at once (that it then builds and
    # publishes over an interrupted build, test_reliability's killed refresh shows)
    with built.connect() as conn:
        taken = conn.execute("select pg_try_advisory_lock(%s, %s)", REFRESH_LOCK).fetchone()
    assert taken == (True,)


def test_sigterm_to_docs_stops_its_server(built: Database) -> None:
    port = free_port()
    # serving is what a signal has to stop (the generation before it is one dbt command,
    # stopped like any other): serve what the target folder holds
    docs = _start(built, "docs", "--target", "postgres", "--port", str(port), "--no-generate")
    try:
        serve = _wait_for_child(docs, " serve ", timeout=90)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the docs server never listened")
        os.kill(docs.pid, signal.SIGTERM)
        out, err = docs.communicate(timeout=60)
    finally:
        if docs.poll() is None:
            os.killpg(docs.pid, signal.SIGKILL)
    assert docs.returncode == 143, out[-2000:] + err
    assert "interrupted by SIGTERM" in err
    assert not is_alive(serve)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_signal_during_the_publish_block_lets_it_finish_then_stops() -> None:
    steps: list[str] = []
    with pytest.raises(Interrupted) as stopped, SignalGuard("never reached") as guard:
        with guard.deferred("the publish completed"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler has run by now
            steps.append("switched")
        steps.append("docs")  # not reached: the signal is raised as the block ends
    assert steps == ["switched"]
    assert stopped.value.exit_code == 143
    assert "the publish completed" in str(stopped.value)
    # outside a deferred block and with no child, a signal stops at once
    with pytest.raises(Interrupted), SignalGuard("stopped") as guard:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        steps.append("after")
    assert steps == ["switched"]
