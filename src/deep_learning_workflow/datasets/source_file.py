"""The public file source: a CSV file read with a look at its header first.

pandas stops at the first problem of a file and words it in its own terms: an empty file is ``No columns to parse``,
a column missing from ``usecols`` is ``Usecols do not match columns``, and a file with another delimiter is read as
one wide column. :class:`SourceCSVDataset` says what is wrong with the file instead, and reads the ``usecols`` the
file has: a missing one is then reported by the acquisition's validation together with the table's other problems.
"""

from __future__ import annotations

import copy
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError, get_filepath_str

from .atomic import CSVDataset

# Delimiters a file written by another tool is likely to use.
OTHER_DELIMITERS = {";": "';'", "\t": "a tab", "|": "'|'", ",": "','"}


class SourceCSVDataset(CSVDataset):
    """A CSV source file: clear errors for an empty file or another delimiter, tolerant ``usecols``.

    Example (catalog)::

        raw_customers:
          type: deep_learning_workflow.datasets.source_file.SourceCSVDataset
          filepath: data/01_raw/telco_churn.csv
          load_args:
            usecols: [customer_id, churn, tenure]
    """

    def _header(self, path: str, load_args: dict[str, Any]) -> list[str]:
        with self._fs.open(path, mode="rb") as file:
            if not file.read(4096).strip():
                raise DatasetError(
                    f"The file '{path}' is empty: it has no header and no rows. Put the table in it, or point "
                    "the catalog's filepath at the right file."
                )
        header_args = {k: v for k, v in load_args.items() if k not in ("usecols", "nrows")}
        with self._fs.open(path, mode="rb") as file:
            return [str(column) for column in pd.read_csv(file, nrows=0, **header_args).columns]

    def _check_delimiter(self, path: str, header: list[str], load_args: dict[str, Any]) -> None:
        if len(header) != 1:
            return
        used = load_args.get("sep", load_args.get("delimiter", ","))
        for delimiter, spoken in OTHER_DELIMITERS.items():
            if delimiter != used and delimiter in header[0]:
                raise DatasetError(
                    f"The file '{path}' was read as one column '{header[0][:80]}': its header looks "
                    f"{spoken}-delimited. Set load_args.sep to {delimiter!r} in this dataset's catalog entry."
                )

    def load(self) -> pd.DataFrame:
        path = get_filepath_str(PurePosixPath(self._get_load_path()), self._protocol)
        load_args = copy.deepcopy(self._load_args)
        header = self._header(path, load_args)
        self._check_delimiter(path, header, load_args)
        wanted = load_args.get("usecols")
        if isinstance(wanted, list | tuple) and all(isinstance(column, str) for column in wanted):
            load_args["usecols"] = [column for column in header if column in set(wanted)]
        with self._fs.open(path, mode="rb") as file:
            return pd.read_csv(file, **load_args)
