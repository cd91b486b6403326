"""Finance's seed files, checked before a refresh builds anything.

The seeds (price list, billing cycles, cost assumptions, IP overrides) are CSV files Finance
edits by hand. dbt's tests of them (seeds/_seeds.yml) stop a build that loaded a bad row,
but they can say only which rule failed, and a value of the wrong type fails `dbt seed`
itself with PostgreSQL's words. A refresh reads the files first and names each bad row by
its file and line, with what to write instead; nothing is built or published until they
are right. The rules are those of the seeds' column types and tests.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pmcost.dbt import project_config
from pmcost.errors import PmcostError
from pmcost.settings import project_dir

MAX_SHOWN = 10  # bad rows named in the error; the rest are counted

Check = Callable[[str], str | None]  # a value -> what is wrong with it, or None


def _money(digits: int) -> Check:
    """numeric(digits, 2), never negative."""
    pattern = re.compile(rf"[0-9]{{1,{digits - 2}}}(\.[0-9]{{1,2}})?")

    def check(value: str) -> str | None:
        if value == "":
            return "is empty"
        if value.startswith("-"):
            return f"{value!r} is negative"
        if not pattern.fullmatch(value):
            return (
                f"{value!r} is not an amount in USD with at most 2 decimals (below 10^{digits - 2})"
            )
        return None

    return check


def _date(value: str) -> str | None:
    try:
        date.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not a date (YYYY-MM-DD)"
    return None


def _text(value: str) -> str | None:
    return "is empty" if value == "" else None


def _months(value: str) -> str | None:
    if not value.isdigit() or int(value) < 1:
        return f"{value!r} is not a whole number of months above 0"
    return None


def _uuid(value: str) -> str | None:
    try:
        uuid.UUID(value)
    except ValueError:
        return f"{value!r} is not a UUID (smtp_ip_addresses.id)"
    return None


def _any(value: str) -> str | None:
    return None


@dataclass(frozen=True)
class SeedFile:
    name: str
    columns: dict[str, Check]  # every column, in the file's order, with its check
    key: tuple[str, ...]  # unique per file (compared trimmed and lowercased)
    example: str  # a good row, shown with an error


BILLING_CYCLES = SeedFile(
    "billing_cycles",
    {"billing_cycle": _text, "months_per_cycle": _months},
    ("billing_cycle",),
    "quarterly,3",
)
SEEDS = (
    BILLING_CYCLES,
    SeedFile(
        "vps_price_list",
        {
            "plan_code": _text,
            "billing_cycle": _text,
            "cycle_price_usd": _money(10),
            "effective_date": _date,
            "source_note": _any,
        },
        ("plan_code", "billing_cycle", "effective_date"),
        "vps-2gb,monthly,17.99,2026-01-01,Hostwinds 2026 list",
    ),
    SeedFile(
        "cost_assumptions",
        {"dedicated_ip_monthly_cost_usd": _money(6), "effective_date": _date, "source_note": _any},
        ("effective_date",),
        "4.99,2026-01-01,why the value changed",
    ),
    SeedFile(
        "smtp_ip_cost_overrides",
        {"smtp_ip_id": _uuid, "monthly_cost_usd": _money(6), "reason": _any},
        ("smtp_ip_id",),
        "0b7c4e1a-5f3d-4c2e-9a8b-1d2e3f4a5b6c,0.00,bundled with the VPS",
    ),
)


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and (line number, values) of each non-blank data row; values trimmed."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = [column.strip() for column in next(reader, [])]
        rows = [
            (reader.line_num, [value.strip() for value in values])
            for values in reader
            if any(value.strip() for value in values)
        ]
        return header, rows


def seed_folder() -> Path:
    """The project's seed folder (dbt_project.yml's first seed-paths entry)."""
    paths = project_config().get("seed-paths") or ["seeds"]
    return project_dir() / str(paths[0])


def problems(seed_dir: Path) -> list[str]:
    """Every bad row of Finance's seed files, as 'seeds/x.csv line N (...): what, fix'."""
    found: list[str] = []
    cycles: set[str] = set()
    for seed in SEEDS:
        path = seed_dir / f"{seed.name}.csv"
        where = f"seeds/{seed.name}.csv"
        if not path.is_file():
            found.append(f"{where} is missing; restore it from git")
            continue
        try:
            header, rows = _rows(path)
        except (UnicodeDecodeError, csv.Error) as error:
            found.append(f"{where} cannot be read as UTF-8 CSV ({error}); save it as CSV again")
            continue
        if header != list(seed.columns):
            found.append(
                f"{where} line 1: the columns are {','.join(header) or '(none)'}; "
                f"they must be {','.join(seed.columns)}"
            )
            continue
        seen: dict[tuple[str, ...], int] = {}
        for line, values in rows:
            row = dict(zip(header, values, strict=False))
            shown = ", ".join(row.get(column, "") for column in seed.key)
            label = f"{where} line {line} ({shown})"
            if len(values) != len(header):
                found.append(
                    f"{label}: has {len(values)} values, not {len(header)}; "
                    f"write the row as e.g. {seed.example}"
                )
                continue
            for column, check in seed.columns.items():
                wrong = check(row[column])
                if wrong:
                    found.append(f"{label}: {column} {wrong}; e.g. {seed.example}")
            key = tuple(row[column].lower() for column in seed.key)
            if key in seen:
                found.append(
                    f"{label}: the same {'/'.join(seed.key)} as line {seen[key]}; keep one of them"
                )
            seen.setdefault(key, line)
            if seed is BILLING_CYCLES:
                cycles.add(row["billing_cycle"].lower())
            elif "billing_cycle" in row and row["billing_cycle"].lower() not in cycles:
                found.append(
                    f"{label}: billing cycle {row['billing_cycle']!r} is not in "
                    f"seeds/billing_cycles.csv; use one of {', '.join(sorted(cycles))}"
                )
    return found


def check(seed_dir: Path | None = None) -> None:
    """Raise, naming every bad row (the first MAX_SHOWN), when a seed file is not right
    (those of the project's seed folder unless `seed_dir` is given)."""
    found = problems(seed_dir or seed_folder())
    if not found:
        return
    more = f"; and {len(found) - MAX_SHOWN} more" if len(found) > MAX_SHOWN else ""
    raise PmcostError(
        "Finance's seed files have bad rows, nothing was built or published: "
        + "; ".join(found[:MAX_SHOWN])
        + more
        + ". Correct the file and run `pmcost refresh` again (the published tables are unchanged)"
    )
