"""pmcost's own messages as JSON lines when dbt logs in JSON (`--log-format json` or
$DBT_LOG_FORMAT=json), so a log shipper reads one format from a whole refresh.

Each line pmcost writes to stdout or stderr becomes one object shaped like dbt's own
(`{"info": {...}, "data": {...}}`), with `info.name` "PmcostMessage" so it can be told apart.
dbt, running as a child process, writes straight to the same file descriptors, so lines never
interleave mid-line: pmcost flushes each line as it completes.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from datetime import UTC, datetime
from typing import TextIO

JSON = "json"


def wanted(option: str | None) -> bool:
    """JSON when --log-format json was given, or else when dbt is set to log JSON."""
    chosen = option or os.environ.get("DBT_LOG_FORMAT", "")
    return chosen.strip().lower() == JSON


def record(message: str, level: str) -> str:
    """One JSON line in dbt's log-record shape."""
    now = datetime.now(UTC)
    return json.dumps(
        {
            "info": {
                "name": "PmcostMessage",
                "code": "",
                "level": level,
                "msg": message,
                "ts": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "pid": os.getpid(),
                "thread": threading.current_thread().name,
                "category": "",
                "extra": {},
            },
            "data": {"msg": message, "source": "pmcost"},
        }
    )


class JsonLines(io.TextIOBase):
    """A text stream that writes each complete line as a JSON record on the wrapped stream."""

    def __init__(self, stream: TextIO, level: str) -> None:
        super().__init__()
        self._stream, self._level, self._pending = stream, level, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        level = self._level
        if level == "warn" and line.startswith(("pmcost: error", "pmcost: database error")):
            level = "error"
        self._stream.write(record(line, level) + "\n")
        self._stream.flush()


def use_json() -> None:
    """From here on, pmcost's prints are JSON lines and dbt (a child) logs JSON too."""
    os.environ["DBT_LOG_FORMAT"] = JSON
    if not isinstance(sys.stdout, JsonLines):
        sys.stdout = JsonLines(sys.stdout, "info")  # type: ignore[assignment]
    if not isinstance(sys.stderr, JsonLines):
        sys.stderr = JsonLines(sys.stderr, "warn")  # type: ignore[assignment]
