"""One dbt process for all the dbt steps of a refresh (`python -m pmcost.dbt_worker`).

Each `dbt` command costs about 3.5 s of Python imports and 1.5-3 s of loading the parsed
project before it runs anything. A refresh has three (source freshness, build, docs). This
worker imports dbt once and runs each command through dbt's public Python API (dbtRunner,
handed the manifest of an earlier `dbt parse`, as dbt's documentation shows for programmatic
invocations); source freshness and build, which have the same --vars, share one parsed
manifest. dbt runs as installed: nothing of dbt, its adapters or psycopg2 is replaced. dbt
prints as it always does, to the worker's stdout and stderr (the parent's own).

Protocol, one JSON line each way: the parent writes {"args": [...], "reuse": KEY or null,
"results_to": PATH or null, "env": {NAME: VALUE}} to stdin (`env`, the day's settings, is
set in the worker's environment before the command); the worker answers {"exit_code": N,
"error": TEXT or null} on the file descriptor named by PMCOST_DBT_RESULTS_FD (0 ok, 1 a node
failed, 2 dbt could not run, as the dbt command; `error` is the message of what stopped
dbt, if anything did, e.g. a compilation error in an on-run-start hook). With `reuse`, the
manifest parsed for KEY serves the command, parsed first if it is not yet. With
`results_to`, the command writes its results file (sources.json, run_results.json) there and
no manifest.json: a refresh's build, which comes next, writes the same manifest. SIGINT
stops the running command as it stops dbt (dbt cancels its queries) and then the worker; end
of input ends the worker. `Worker` runs one request; the test suite runs the same code in
its own process (tests/python/conftest.py, InProcessSession).
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import re
import sys
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


def error_text(exception: BaseException | None) -> str | None:
    """The message of what stopped dbt, on one line: dbt's heading (e.g. "Compilation Error
    in operation pmcost-on-run-start-1 (./dbt_project.yml)") left out when a message
    follows it, the message's lines joined with "; " (a hook's list of problems stays
    readable, after a line ending with a colon), without the Jinja call stack dbt adds; None
    when nothing stopped it (a failed node is in its results instead)."""
    if exception is None or isinstance(exception, KeyboardInterrupt):
        return None
    lines = [line.strip() for line in str(exception).splitlines()]
    # not dbt's Jinja call stack ("> in macro ...", "> called by ...")
    lines = [line.lstrip("- ").strip() for line in lines if line and not line.startswith(">")]
    if len(lines) > 1 and re.fullmatch(r"[A-Za-z ]*Error( in .*)?", lines[0]):
        lines = lines[1:]
    text = ""
    for line in lines:
        text += ("" if not text else " " if text.endswith(":") else "; ") + line
    return text or type(exception).__name__


class Worker:
    """Runs one request of the protocol (module docstring) and returns dbt's exit code; the
    manifests parsed for `reuse` keys are kept for the worker's later requests. The worker
    process serves its stdin with one; the test suite runs one in its own process."""

    def __init__(self) -> None:
        self.manifests: dict[str, Any] = {}  # dbt's Manifest per reuse key
        self.error: str | None = None  # what stopped the last request's dbt, if anything

    def run(self, request: dict[str, Any]) -> int:
        from dbt.cli.exceptions import DbtUsageException
        from dbt.cli.main import dbtRunner
        from dbt.contracts.graph.manifest import Manifest

        self.error = None
        # the day's settings the project's macros read while they run (PMCOST_AS_OF_DATE,
        # PMCOST_HISTORY_START); dbt takes the environment when a command starts
        os.environ.update(request.get("env") or {})
        args: list[str] = list(request["args"])
        key = request.get("reuse")
        manifest = self.manifests.get(key) if key else None
        if key and manifest is None:
            parsed = self.parse(args)
            if not parsed.success or not isinstance(parsed.result, Manifest):
                self.error = error_text(parsed.exception)
                return exit_code(parsed.success, parsed.exception) or 2
            manifest = self.manifests[key] = parsed.result
        results_to = request.get("results_to")
        if results_to:
            args.append("--no-write-json")
        outcome = dbtRunner(manifest=manifest).invoke(args)
        if results_to and hasattr(outcome.result, "write"):
            outcome.result.write(results_to)  # what dbt writes itself without the flag
        if isinstance(outcome.exception, DbtUsageException):
            # the dbt command prints its usage errors itself; dbtRunner returns them
            print(f"dbt: {outcome.exception}", file=sys.stderr, flush=True)
        self.error = error_text(outcome.exception)
        return exit_code(outcome.success, outcome.exception)

    def parse(self, args: list[str]) -> Any:
        """dbt's parse for a command that `reuse`s it (its dbtRunnerResult, the Manifest its
        result)."""
        from dbt.cli.main import dbtRunner

        return dbtRunner().invoke(parse_args(args))


# The cyclic garbage collector's first threshold (Python's default is 700): see
# collect_garbage_less_often.
YOUNG_OBJECTS_BEFORE_COLLECTION = 10_000


def collect_garbage_less_often() -> None:
    """Let the youngest generation grow to 10,000 objects (not 700) between collections.

    A dbt command allocates a few hundred thousand short-lived objects per hundred nodes (Jinja
    contexts, events, agate tables) beside a parsed manifest that lives as long as the worker.
    With the default threshold every 700 allocations start a collection, and up to every
    hundredth one walks the whole heap, manifest included: about a tenth of a build's CPU time
    on the demo. Collections still run, only less often, so memory stays bounded
    (DECISIONLOG)."""
    gc.set_threshold(YOUNG_OBJECTS_BEFORE_COLLECTION, *gc.get_threshold()[1:])


def serve() -> int:
    collect_garbage_less_often()
    answers = os.fdopen(int(os.environ[RESULTS_FD_VARIABLE]), "w", buffering=1)
    worker = Worker()
    try:
        for line in sys.stdin:
            code = worker.run(json.loads(line))
            answers.write(json.dumps({"exit_code": code, "error": worker.error}) + "\n")
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
