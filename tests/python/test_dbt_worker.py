"""The refresh's dbt worker orders a build's nodes: longest chain first, one node per thread."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import networkx
import pytest

from pmcost.dbt_worker import (
    chain_seconds,
    keep_connections_between_nodes,
    node_seconds,
    run_longest_chains_first,
)

from .conftest import Database


def test_chain_seconds_is_a_node_and_the_longest_chain_waiting_for_it() -> None:
    graph = networkx.DiGraph(
        [("stg", "slow"), ("stg", "quick"), ("slow", "fact"), ("quick", "fact"), ("x", "y")]
    )
    seconds = {"stg": 1.0, "slow": 5.0, "quick": 2.0, "fact": 3.0, "x": 4.0}
    chains = chain_seconds(graph, seconds)
    assert chains["fact"] == 3.0
    assert chains["slow"] == 8.0 and chains["quick"] == 5.0
    assert chains["stg"] == 9.0  # through slow, not quick
    # y has no time of its own: the median of the known ones (3.0)
    assert chains["y"] == 3.0 and chains["x"] == 7.0
    # without any earlier build, every node counts 1 s: the chain's length in nodes
    assert chain_seconds(graph, {})["stg"] == 3.0


def test_node_seconds_reads_a_run_results_file(tmp_path: Path) -> None:
    results = tmp_path / "run_results.json"
    results.write_text(
        json.dumps(
            {
                "results": [
                    {"unique_id": "model.p.a", "execution_time": 1.5},
                    {"unique_id": "test.p.t", "execution_time": 0.25},
                ]
            }
        )
    )
    assert node_seconds(results) == {"model.p.a": 1.5, "test.p.t": 0.25}
    assert node_seconds(tmp_path / "missing.json") == {}
    assert node_seconds(None) == {}
    (tmp_path / "broken.json").write_text("{")
    assert node_seconds(tmp_path / "broken.json") == {}


@pytest.fixture
def own_dbt_queue(monkeypatch: pytest.MonkeyPatch):
    """dbt's queue and runner methods as they are now, restored after the test, so a test can
    install the scheduling patch on them (again) whatever ran before; no node times yet."""
    from dbt.graph.queue import GraphQueue
    from dbt.task.runnable import GraphRunnableTask

    from pmcost import dbt_worker

    for owner, name in (
        (GraphQueue, "_get_scores"),
        (GraphQueue, "get"),
        (GraphRunnableTask, "run_queue"),
    ):
        monkeypatch.setattr(owner, name, getattr(owner, name))
    monkeypatch.delattr(GraphQueue, "pmcost_longest_chains_first", raising=False)
    monkeypatch.setattr(dbt_worker, "_timings", {})
    return GraphQueue, GraphRunnableTask, dbt_worker._timings


def test_a_free_thread_gets_the_head_of_the_longest_chain(own_dbt_queue) -> None:
    graph_queue, _, timings = own_dbt_queue
    run_longest_chains_first()
    # "a" and "c" are both ready; dbt alone would hand out "a" first (same depth, name order)
    graph = networkx.DiGraph([("a", "b"), ("c", "d")])
    timings.update({"a": 1.0, "b": 1.0, "c": 5.0, "d": 5.0})
    manifest = SimpleNamespace(expect=lambda node_id: SimpleNamespace(unique_id=node_id))
    queue = graph_queue(graph, manifest, set(graph))
    queue.pmcost_threads = 1  # what run_queue sets from dbt's thread count
    assert queue.get().unique_id == "c"

    # one thread, busy with "c": the next node is handed out only when "c" is done, and it
    # is then "d" (chain 5 s), ready by then, not "a" (chain 2 s), ready all along
    handed: list[str] = []
    waiter = threading.Thread(target=lambda: handed.append(queue.get().unique_id))
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive() and handed == []
    queue.mark_done("c")
    waiter.join(timeout=5)
    assert handed == ["d"]


def test_the_build_hands_out_as_many_nodes_as_dbt_has_threads(
    own_dbt_queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, runnable_task, _ = own_dbt_queue
    ran: list[object] = []
    # dbt's own run_queue, as the patch finds it, stands in for the thread pool's loop
    monkeypatch.setattr(runnable_task, "run_queue", lambda self, pool: ran.append(pool))
    run_longest_chains_first()
    task = SimpleNamespace(job_queue=SimpleNamespace(), config=SimpleNamespace(threads=3))
    runnable_task.run_queue(task, "pool")
    assert task.job_queue.pmcost_threads == 3 and ran == ["pool"]


def test_a_kept_connection_begins_the_next_nodes_transaction(database: Database) -> None:
    """dbt-postgres ends a model's transaction with a COMMIT statement; psycopg2 does not see
    it. The next node on the kept connection must still run in a transaction of its own."""
    import psycopg2
    from dbt.adapters.base.connections import BaseConnectionManager
    from dbt.adapters.contracts.connection import ConnectionState
    from psycopg2.extensions import TRANSACTION_STATUS_INTRANS

    keep_connections_between_nodes()
    handle = psycopg2.connect(database.conninfo)
    try:
        cursor = handle.cursor()
        cursor.execute("select 1")  # a model's statements: psycopg2 begins the transaction
        cursor.execute("commit")  # dbt-postgres's commit
        conn = SimpleNamespace(state=ConnectionState.OPEN, transaction_open=False, handle=handle)
        manager = SimpleNamespace(lock=threading.Lock(), get_if_exists=lambda: conn)
        BaseConnectionManager.release(manager)  # the end of the node, as the worker has it
        assert not handle.closed  # kept for the next node
        cursor.execute("set local work_mem = '64MB'")  # the next node's pre-hook
        assert handle.get_transaction_status() == TRANSACTION_STATUS_INTRANS
        cursor.execute("show work_mem")
        assert cursor.fetchone() == ("64MB",)
        handle.rollback()
        assert not any("transaction" in notice for notice in handle.notices), handle.notices
    finally:
        handle.close()
