"""Reliability (pmcost bench --chaos, at a small scale), on the suite's built database.

Readers never fail or see an empty mart during a full refresh; a refresh killed halfway
leaves the previous marts readable and complete and the next one succeeds; refreshes that
fail on a test, a guard, a kill while the snapshots are captured and a lost connection leave
everything a later run reads as it was, and the next refresh, the sources fixed, publishes;
the pre-hook runs under application writes without failing them.

The run's other steps are asserted on the suite's own databases, each by a test of its own:
two refreshes at once (test_refresh.py, test_second_refresh_exits_clearly_while_one_runs), a
refresh whose tests fail (test_publication.py, test_a_failing_test_publishes_nothing) and
SIGTERM to the refresh process (test_signals.py,
test_sigterm_to_refresh_stops_dbt_keeps_the_lock_until_then_publishes_nothing).
"""

from __future__ import annotations

import subprocess
import time

import psycopg
import pytest

from benchmarks import bench

from .conftest import ANCHOR, Database

# a refresh failing on a test, then fixed, is test_failed_runs.py's first test; one stopped by
# a guard, test_publication.py's large-move test (the kept state compared there too); a kill
# after the snapshots were captured is the killed_refresh step's (it kills the build's models)
FAILURES_HERE = ("a_lost_connection",)
ASSERTED_HERE = (
    "readers_during_refresh",
    "killed_refresh",
    "failed_then_fixed",
    "pre_hook_under_writes",
)


class SuiteBench(bench.Bench):
    """The reliability run's bench on a copy of the suite's built database (demo data,
    pre-hook, published marts) instead of a throwaway server of its own: the same `pmcost`
    command lines, on the session's server with its kept parse state."""

    def __init__(self, database: Database) -> None:  # no server to start
        self.database, self.state, self.as_of = database, database.work_dir, ANCHOR
        self.tenants = database.query("select count(*) from public.companies")[0][0]
        database.seed_parse_states()

    def close(self) -> None:  # the database fixture drops the copy
        pass

    def connect(self) -> psycopg.Connection:
        return self.database.connect()

    def env(self) -> dict[str, str]:
        return self.database.env()

    def pmcost(
        self, *args: str, check: bool = True
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        """A refresh the steps wait for, in this process as the suite's other refreshes run
        (Database.pmcost); the ones they kill or cut off stay processes of their own
        (bench._refresh_reaching)."""
        started = time.perf_counter()
        result = self.database.pmcost(*args, check=check)
        return time.perf_counter() - started, result


def test_chaos_run_at_small_scale(built: Database) -> None:
    messages: list[str] = []
    # 20 readers 20 ms apart (up to 1,000 reads a second) instead of the bench's 100 back to
    # back: they still read through the whole refresh and its switch, without taking the
    # CPU the other test worker needs
    figures = bench.chaos(
        0,
        say=messages.append,
        steps=ASSERTED_HERE,
        readers=20,
        read_pause=0.02,
        on=SuiteBench(built),
        failures=FAILURES_HERE,
    )
    assert set(figures) == {"tenants", *ASSERTED_HERE}  # the steps left out did not run

    readers = figures["readers_during_refresh"]
    assert readers["reads"] > 100
    assert (readers["failed"], readers["empty"]) == (0, 0), readers

    killed = figures["killed_refresh"]
    assert killed["marts_rows_after_kill"] == killed["marts_rows_before"] > 0
    assert killed["kept_state_unchanged"] is True
    assert killed["next_refresh_exit"] == 0

    failed = figures["failed_then_fixed"]
    for case in FAILURES_HERE:
        assert failed[case]["exit"] != 0, (case, failed)
        assert failed[case]["kept_state_unchanged"] is True, (case, failed)
    assert failed["fixed_refresh_exit"] == 0, failed
    assert failed["fixed_price_published"] is True, failed

    under_writes = figures["pre_hook_under_writes"]
    assert under_writes["apply_ok"] is True
    assert under_writes["writes"] > 0


def test_the_first_two_reliability_steps_always_run() -> None:
    with pytest.raises(ValueError, match="always run"):
        bench.chaos(200, steps=("pre_hook_under_writes",))
    with pytest.raises(ValueError, match="must be one of"):
        bench.chaos(200, steps=(*bench.CHAOS_STEPS, "no_such_step"))
