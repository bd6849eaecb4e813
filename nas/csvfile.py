"""Reading a user's CSV file: one line naming the file when it is missing, unreadable or empty."""

from __future__ import annotations

import csv
from pathlib import Path

from nas.errors import NasError


def read_rows(path: str | Path, what: str = "results file") -> list[dict[str, str]]:
    """The rows of a CSV with a header line, as dicts; ``what`` names the file in errors."""
    path = Path(path)
    if not path.is_file():
        raise NasError(f"{what} {str(path)!r} does not exist")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NasError(f"cannot read {str(path)!r} as CSV: {exc}") from None
    if not rows:
        raise NasError(f"{what} {path.name} has no data rows")
    return rows
