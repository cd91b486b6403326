"""One dbt process for all the dbt steps of a refresh (`python -m pmcost.dbt_worker`).

Each `dbt` command costs about 3.5 s of Python imports and 1.5-3 s of loading the parsed
project before it runs anything. A refresh has three (source freshness, build, docs). This
worker imports dbt once and runs each command through dbt's Python API (dbtRunner); source
freshness and build, which have the same --vars, share one parsed manifest. dbt prints as
it always does, to the worker's stdout and stderr (the parent's own).

Protocol, one JSON line each way: the parent writes {"args": [...], "reuse": KEY or null,
"results_to": PATH or null, "timings": PATH or null} to stdin; the worker answers
{"exit_code": N} on the file descriptor named by PMCOST_DBT_RESULTS_FD (0 ok, 1 a node
failed, 2 dbt could not run, as the dbt command). With `reuse`, the manifest parsed for KEY
serves the command, parsed first if it is not yet. With `results_to`, the command writes its
results file (sources.json, run_results.json) there and no manifest.json: a refresh's build,
which comes next, writes the same manifest, and the write costs about 0.3 s of a demo
refresh. With `timings`, a run_results.json of an earlier build, the command runs the
longest chains of nodes first (see `run_longest_chains_first`).
SIGINT stops the running command as it stops dbt (dbt cancels its queries) and then the
worker; end of input ends the worker. Between the nodes of a command, dbt's connections stay
open (see `keep_connections_between_nodes`).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

RESULTS_FD_VARIABLE = "PMCOST_DBT_RESULTS_FD"
# options that shape the parse; the rest of a command's options do not
PARSE_OPTIONS = ("--target", "--vars", "--profile", "--project-dir", "--profiles-dir")


def parse_args(args: list[str]) -> list[str]:
    """The `dbt parse` command line for a command's own parse-shaping options.

    It writes no manifest.json (partial_parse.msgpack still): the command it parses for
    writes the same manifest when it ends.
    """
    chosen: list[str] = ["parse", "--no-write-json"]
    for index, arg in enumerate(args[:-1]):
        if arg in PARSE_OPTIONS:
            chosen += [arg, args[index + 1]]
    return chosen


def exit_code(success: bool, exception: BaseException | None) -> int:
    if success:
        return 0
    if isinstance(exception, KeyboardInterrupt):
        return 130
    return 1 if exception is None else 2


def keep_connections_between_nodes() -> None:
    """Let each dbt thread keep its PostgreSQL connection from one node to the next.

    dbt closes a thread's connection after every node and opens a new one for the next: a
    login and a new server process with cold catalog caches, about 5 ms of the server's time
    and 2 ms of dbt's per node. On the demo, a build's 145 nodes used 0.8-1.0 s of server
    time with them and 0.25 s without. This replaces the release at the end of a node with
    what the close did first, a rollback of what the node left open; a connection that is
    broken or not idle after it is closed as before, so the next node opens a new one. dbt
    still closes every connection at the end of the command. The project sets no session
    state (no SET outside a transaction); what a node leaves in its session is at most an
    incremental run's temporary table, whose name dbt makes unique with the time, dropped
    when the command ends. psycopg2's own idea of the transaction is put back in step with
    the server's, so the next node's statements run in one transaction, as on a new
    connection.
    """
    import psycopg2
    from dbt.adapters.base.connections import BaseConnectionManager
    from dbt.adapters.contracts.connection import ConnectionState
    from psycopg2.extensions import STATUS_READY, TRANSACTION_STATUS_IDLE

    close = BaseConnectionManager.close

    def release(self: BaseConnectionManager) -> None:
        with self.lock:
            conn = self.get_if_exists()
        if conn is None or conn.state != ConnectionState.OPEN:
            return
        if conn.transaction_open:
            self._rollback_handle(conn)
            conn.transaction_open = False
        handle = conn.handle
        keep = not handle.closed and handle.get_transaction_status() == TRANSACTION_STATUS_IDLE
        if keep and handle.status != STATUS_READY:
            # dbt-postgres ends a model's transaction with a COMMIT statement, which psycopg2
            # does not see: it would still count the transaction open and not begin the next
            # node's, whose statements would each commit on their own (a pre-hook's
            # `set local` would do nothing). A BEGIN, then psycopg2's own rollback of that
            # empty transaction, puts both sides back in step without a server warning.
            try:
                handle.cursor().execute("begin")
                handle.rollback()
            except psycopg2.Error:
                keep = False
        if not keep:
            try:
                close(conn)
            except Exception:
                self.clear_thread_connection()
                raise

    BaseConnectionManager.release = release  # type: ignore[method-assign]


def node_seconds(run_results: Path | None) -> dict[str, float]:
    """Each node's execution time in a run_results.json; {} when there is none to read."""
    if run_results is None:
        return {}
    try:
        results = json.loads(run_results.read_text())["results"]
        return {str(r["unique_id"]): float(r["execution_time"] or 0.0) for r in results}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def chain_seconds(graph: Any, seconds: Mapping[str, float]) -> dict[str, float]:
    """Per node of a networkx DiGraph: its own time and that of the longest chain of nodes
    that waits for it.

    A node missing from `seconds` (new, or no earlier build) counts as the median of the
    known times, or 1 s when none is known: the chain is then its count of nodes.
    """
    import networkx

    known = sorted(seconds.values())
    default = known[len(known) // 2] if known else 1.0
    chain: dict[str, float] = {}
    for node in reversed(list(networkx.topological_sort(graph))):  # waiting nodes first
        longest = max((chain[child] for child in graph.successors(node)), default=0.0)
        chain[node] = seconds.get(node, default) + longest
    return chain


# the node times the next command orders its nodes by (set per request)
_timings: dict[str, float] = {}


def run_longest_chains_first() -> None:
    """Give each free dbt thread the ready node that heads the longest chain still to run.

    dbt 1.11 ranks ready nodes by their depth from the roots, and hands every node to its
    thread pool as soon as it is ready, where they wait in arrival order: a node on the
    longest chain to the marts (the daily fact's inputs) waits behind whatever became ready
    before it, and the fact then runs alone at the end, one thread idle. This ranks a node
    by its own time plus the longest chain of nodes waiting for it (times of the previous
    build, `_timings`) and hands a node out only when a thread is free, so the rank decides.
    At 100,000 tenants a refresh's build took 1.5-2 s less (4 runs each, 2 threads). The
    nodes, their tests and what each waits for are dbt's: only the order changes.
    Without dbt's internals as 1.11 has them, dbt's own order stays.
    """
    try:
        from dbt.graph.queue import GraphQueue
        from dbt.task.runnable import GraphRunnableTask
    except ImportError:
        return
    if getattr(GraphQueue, "pmcost_longest_chains_first", False):
        return  # already in place
    if not all(
        callable(getattr(cls, name, None))
        for cls, name in (
            (GraphQueue, "_get_scores"),
            (GraphQueue, "get"),
            (GraphRunnableTask, "run_queue"),
        )
    ):
        return
    dbt_get = GraphQueue.get
    dbt_run_queue = GraphRunnableTask.run_queue

    def scores(self: GraphQueue, graph: Any) -> dict[str, float]:
        # lower is first: the longest chain gets the lowest
        return {node: -seconds for node, seconds in chain_seconds(graph, _timings).items()}

    def get(self: GraphQueue, block: bool = True, timeout: float | None = None) -> Any:
        threads = getattr(self, "pmcost_threads", 0)
        with self.lock:
            while threads and len(self.in_progress) >= threads:
                self.some_task_done.wait()
        return dbt_get(self, block, timeout)

    def run_queue(self: GraphRunnableTask, pool: Any) -> None:
        if self.job_queue is not None:
            self.job_queue.pmcost_threads = self.config.threads  # type: ignore[attr-defined]
        dbt_run_queue(self, pool)

    GraphQueue._get_scores = scores  # type: ignore[method-assign,assignment]
    GraphQueue.get = get  # type: ignore[method-assign]
    GraphRunnableTask.run_queue = run_queue  # type: ignore[method-assign]
    GraphQueue.pmcost_longest_chains_first = True  # type: ignore[attr-defined]


def serve() -> int:
    from dbt.cli.exceptions import DbtUsageException
    from dbt.cli.main import dbtRunner
    from dbt.contracts.graph.manifest import Manifest

    keep_connections_between_nodes()
    run_longest_chains_first()
    answers = os.fdopen(int(os.environ[RESULTS_FD_VARIABLE]), "w", buffering=1)
    manifests: dict[str, Manifest] = {}
    try:
        for line in sys.stdin:
            request: dict[str, Any] = json.loads(line)
            args: list[str] = list(request["args"])
            key = request.get("reuse")
            manifest = manifests.get(key) if key else None
            if key and manifest is None:
                parsed = dbtRunner().invoke(parse_args(args))
                if not parsed.success or not isinstance(parsed.result, Manifest):
                    code = exit_code(parsed.success, parsed.exception)
                    answers.write(json.dumps({"exit_code": code or 2}) + "\n")
                    continue
                manifest = manifests[key] = parsed.result
            timings = request.get("timings")
            _timings.clear()
            _timings.update(node_seconds(Path(timings) if timings else None))
            results_to = request.get("results_to")
            if results_to:
                args.append("--no-write-json")
            outcome = dbtRunner(manifest=manifest).invoke(args)
            if results_to and hasattr(outcome.result, "write"):
                outcome.result.write(results_to)  # what dbt writes itself without the flag
            if isinstance(outcome.exception, DbtUsageException):
                # the dbt command prints its usage errors itself; dbtRunner returns them
                print(f"dbt: {outcome.exception}", file=sys.stderr, flush=True)
            code = exit_code(outcome.success, outcome.exception)
            answers.write(json.dumps({"exit_code": code}) + "\n")
            if code == 130:
                return 130
    except KeyboardInterrupt:
        return 130
    return 0


def finish(code: int) -> NoReturn:
    """Exit as Python would, without the interpreter's teardown of its modules: with dbt's
    modules and the parsed manifests loaded, that took 0.47-0.52 s at the end of every demo
    refresh and wrote nothing. The exit handlers still run (dbt's file log is flushed and
    closed, multiprocessing releases the locks dbt's adapters made), then the output is
    flushed; dbt closes its connections at the end of each command."""
    atexit._run_exitfuncs()  # what the interpreter runs first at exit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    finish(serve())
