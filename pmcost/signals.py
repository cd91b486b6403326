"""SIGTERM and SIGINT for long commands: stop the child (dbt), wait for it, then exit.

Without this, `kill PID` or a supervisor's stop ends pmcost at once while its `dbt build`
goes on running, and the refresh lock (held by pmcost's connection) is released under it.
Inside `SignalGuard`, a signal asks the running child to stop (SIGINT: dbt cancels its
queries), waits for it (escalating to SIGKILL after a grace period), and only then raises
`Interrupted`, whose exit code is 128 + the signal number (143 for SIGTERM, 130 for SIGINT).
With no child running, `Interrupted` is raised at once (an open transaction rolls back).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from pmcost.errors import PmcostError

HANDLED = (signal.SIGTERM, signal.SIGINT)
# A terminal's Ctrl-C reaches the whole process group, dbt included: give dbt this long to
# stop on its own before pmcost forwards the signal.
TERMINAL_GRACE_SECONDS = 2.0
# How long a child may take to stop after SIGINT before it is killed.
STOP_GRACE_SECONDS = 30.0
POLL_SECONDS = 0.2


class Interrupted(PmcostError):
    """A signal stopped the command after its child had exited."""

    def __init__(self, signum: int, what: str) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}: {what}")
        self.signum = signum
        self.exit_code = 128 + signum


class SignalGuard:
    """Context manager: SIGTERM/SIGINT stop the child first, then raise `Interrupted`."""

    def __init__(self, what: str = "stopped cleanly") -> None:
        self.what = what
        self.received: int | None = None
        self.received_at = 0.0
        self._child: subprocess.Popen[bytes] | None = None
        self._deferring = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received, self.received_at = signum, time.monotonic()
        if self._deferring:
            return  # deferred() raises once its block is done
        if self._child is None or self._child.poll() is not None:
            raise Interrupted(signum, self.what)
        # a child runs: run() forwards the signal and raises once the child has exited

    @contextmanager
    def deferred(self, done: str) -> Iterator[None]:
        """A block a signal must not cut in two (the publish transaction): a signal during
        it is raised when it ends, with `done` saying what completed; the block either runs
        to its end or never starts."""
        self.check()
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self.received is not None:
            raise Interrupted(self.received, done)

    def check(self) -> None:
        """Raise `Interrupted` if a signal arrived (call between steps)."""
        if self.received is not None:
            raise Interrupted(self.received, self.what)

    def run(self, command: Sequence[str], **popen: Any) -> int:
        """Run a child to completion; on a signal stop it, wait for it, raise `Interrupted`."""
        self.check()
        child = subprocess.Popen(list(command), **popen)
        return self.supervise(child, lambda: _exit_code_within(child, POLL_SECONDS))

    def supervise(self, child: subprocess.Popen[Any], answer: Callable[[], int | None]) -> int:
        """Wait for `answer()` (an exit code, or None after waiting up to POLL_SECONDS) while
        `child` works on it; on a signal stop the child as run() does, then raise."""
        self._child = child
        forwarded_at: float | None = None
        try:
            while True:
                code = answer()
                if code is not None:
                    break
                if self.received is None:
                    continue
                now = time.monotonic()
                if forwarded_at is None:
                    from_terminal = self.received == signal.SIGINT
                    if from_terminal and now - self.received_at < TERMINAL_GRACE_SECONDS:
                        continue
                    child.send_signal(signal.SIGINT)
                    forwarded_at = now
                elif now - forwarded_at > STOP_GRACE_SECONDS:
                    child.kill()
        finally:
            self._child = None
        self.check()
        return code


def _exit_code_within(child: subprocess.Popen[Any], seconds: float) -> int | None:
    try:
        return child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def child_processes(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live children of `pid`, from /proc (Linux): for the
    reliability run and the tests, which check that no dbt outlives its pmcost."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append((int(status.parent.name), cmdline))
    return found


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
