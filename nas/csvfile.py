"""Reading a user's CSV file: one line naming the file when it is missing, unreadable or empty."""

from __future__ import annotations

import csv
from pathlib import Path

from nas.errors import NasError, first_line


def read_rows(path: str | Path, what: str = "results file", max_rows: int | None = None) -> list[dict[str, str]]:
    """The rows of a CSV with a header line, as dicts; ``what`` names the file in errors. A
    byte-order mark is dropped (spreadsheets write one); more than ``max_rows`` rows is refused
    before the rest is read."""
    path = Path(path)
    try:
        if not path.is_file():
            raise NasError(f"{what} {str(path)!r} does not exist")
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = []
            for row in csv.DictReader(f):
                if None in row:  # DictReader's key for the fields past the header's
                    raise NasError(f"{what} {path.name} line {len(rows) + 2} has more fields than its header")
                rows.append(row)
                if max_rows is not None and len(rows) > max_rows:
                    raise NasError(f"{what} {path.name} has more than {max_rows:,} rows, more than one import takes: "
                                   "split it, or keep the archs that matter")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NasError(f"cannot read {str(path)!r} as CSV: {first_line(exc, 160)}") from None
    if not rows:
        raise NasError(f"{what} {path.name} has no data rows")
    return rows
