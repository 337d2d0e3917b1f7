"""Reading a user's table: CSV (delimiter sniffed from the header) or Parquet."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

DELIMITERS = ",;\t|"
SNIFF_BYTES = 65536


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a CSV file, sniffed from its first lines (``,`` when nothing else fits).

    Args:
        path: the CSV file.

    Returns:
        One of ``, ; TAB |``.
    """
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        sample = handle.read(SNIFF_BYTES)
    if not sample:
        return ","
    # A truncated last line would make the sniffer see ragged rows.
    lines = sample.splitlines()
    sample = "\n".join(lines[:-1] if len(lines) > 1 else lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = lines[0]
        counts = {delimiter: header.count(delimiter) for delimiter in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def read_table(path: Path) -> tuple[pd.DataFrame, str | None]:
    """Read a CSV or Parquet table.

    Args:
        path: ``.csv`` / ``.tsv`` / ``.txt`` (delimiter sniffed) or ``.parquet`` / ``.pq``.

    Returns:
        The table and the CSV delimiter (None for Parquet).

    Raises:
        ValueError: the file does not exist, its format is unknown, or it holds no rows.
    """
    if not path.is_file():
        raise ValueError(f"Table '{path}' does not exist; give the path of a CSV or Parquet file.")
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        frame, delimiter = pd.read_parquet(path), None
    elif suffix in {".csv", ".tsv", ".txt"}:
        delimiter = sniff_delimiter(path)
        frame = pd.read_csv(path, sep=delimiter)
    else:
        raise ValueError(
            f"Table '{path}' is neither CSV (.csv, .tsv, .txt) nor Parquet (.parquet, .pq)."
        )
    if frame.empty:
        raise ValueError(f"Table '{path}' has no rows.")
    return frame, delimiter


def one_column_hint(frame: pd.DataFrame) -> str | None:
    """Why a table read as one column probably has another delimiter, or None."""
    if len(frame.columns) != 1:
        return None
    header = str(frame.columns[0])
    found = [repr(d) for d in DELIMITERS if d in header and d != ","]
    if not found:
        return None
    return (
        f"it was read as one column named {header[:60]!r}, whose name holds {', '.join(found)}: the file is "
        f"delimited by {found[0]}; set load_args: {{sep: {found[0]}}} in its catalog entry"
    )
