"""Reliability on a throwaway server (pmcost bench --chaos, at a small scale).

Readers never fail or see an empty mart during a full refresh; a refresh killed halfway
leaves the previous marts readable and complete and the next one succeeds; of two refreshes
started at once one runs and the other exits clearly; a refresh whose tests fail, or whose
process alone gets SIGTERM, publishes nothing and leaves no dbt running; the pre-hook runs
under application writes without failing them.
"""

from __future__ import annotations

from pmcost import bench


def test_chaos_run_at_small_scale() -> None:
    messages: list[str] = []
    figures = bench.chaos(200, say=messages.append)

    readers = figures["readers_during_refresh"]
    assert readers["reads"] > 100
    assert (readers["failed"], readers["empty"]) == (0, 0), readers

    killed = figures["killed_refresh"]
    assert killed["marts_rows_after_kill"] == killed["marts_rows_before"] > 0
    assert killed["next_refresh_exit"] == 0

    assert figures["two_refreshes"] == [0, 75]
    assert any("another pmcost refresh" in message for message in messages)

    failing = figures["failing_test_refresh"]
    assert failing == {"exit": 1, "published_unchanged": True}

    terminated = figures["sigterm_parent"]
    assert terminated["exit"] == 143 and terminated["published_unchanged"] is True
    assert terminated["dbt_children_seen"] == 1 and terminated["dbt_left_running"] == 0

    under_writes = figures["pre_hook_under_writes"]
    assert under_writes["apply_ok"] is True
    assert under_writes["writes"] > 0
