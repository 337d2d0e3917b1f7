"""Tables read and written in chunks, so that scoring a large table takes constant memory.

- :class:`TableChunksDataset` loads a :class:`TableSource`: the path of a Parquet file (or folder of Parquet
  files) or CSV file, read chunk by chunk (Parquet record batches through pyarrow, CSV through ``pandas.read_csv``
  with ``chunksize``) by whoever iterates it; nothing is read at load time.
- :class:`ChunkedParquetDataset` saves a pandas DataFrame, or a :class:`StagedParquet` file a node has already
  written chunk by chunk, atomically: the finished file is renamed into place, so a failed or killed run never
  leaves a partial file under the final name (see :mod:`deep_learning_workflow.datasets.atomic`).

A node that takes a scoring input accepts a DataFrame as well (an in-memory or ``pandas.CSVDataset`` entry):
:func:`iter_chunks` slices it the same way.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from kedro.io.core import AbstractDataset, DatasetError

from .atomic import ParquetDataset

PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class TableSource:
    """A table on disk, read in chunks.

    Args:
        path: a ``.csv`` file, a ``.parquet`` file, or a folder of Parquet files (a partitioned dataset).
        load_args: extra ``pandas.read_csv`` arguments for a CSV file.
    """

    path: str
    load_args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_parquet(self) -> bool:
        path = Path(self.path)
        return path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES

    def columns(self) -> list[str]:
        """The table's column names (read from the Parquet schema or the CSV header)."""
        if self.is_parquet:
            return list(pads.dataset(self.path, format="parquet").schema.names)
        return list(pd.read_csv(self.path, nrows=0, **self.load_args).columns)

    def chunks(self, rows: int, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """The table as DataFrames of at most ``rows`` rows, in file order; ``columns`` restricts the columns read."""
        if self.is_parquet:
            # File by file, row group by row group: a dataset scanner would read many batches ahead.
            for fragment in sorted(pads.dataset(self.path, format="parquet").files, key=_natural):
                with pq.ParquetFile(fragment) as parquet:
                    for batch in parquet.iter_batches(
                        batch_size=rows, columns=list(columns) if columns else None
                    ):
                        if batch.num_rows:
                            yield batch.to_pandas()
            return
        usecols = (lambda name: name in set(columns)) if columns else None
        with pd.read_csv(self.path, chunksize=rows, usecols=usecols, **self.load_args) as reader:
            yield from reader


def _natural(path: str) -> list[Any]:
    """Sort key of file names with numbers in numeric order (part-2 before part-10), as Dask orders them."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def iter_chunks(
    table: pd.DataFrame | TableSource, rows: int, columns: Sequence[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Chunks of at most ``rows`` rows of an in-memory DataFrame or a :class:`TableSource`."""
    if isinstance(table, TableSource):
        yield from table.chunks(rows, columns)
        return
    selected = table.loc[:, [c for c in columns if c in table.columns]] if columns else table
    for start in range(0, len(selected), rows):
        yield selected.iloc[start : start + rows]


def table_columns(table: pd.DataFrame | TableSource) -> list[str]:
    """Column names of an in-memory DataFrame or a :class:`TableSource`."""
    return table.columns() if isinstance(table, TableSource) else list(table.columns)


class TableChunksDataset(AbstractDataset[None, TableSource]):
    """A CSV or Parquet table that nodes read chunk by chunk (load returns a :class:`TableSource`; read-only).

    Args:
        filepath: a ``.csv`` file, a ``.parquet`` file or a folder of Parquet files, relative to the project.
        load_args: extra ``pandas.read_csv`` arguments for a CSV file.
        metadata: free-form metadata (kedro-viz).
    """

    def __init__(
        self,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = str(filepath)
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    def load(self) -> TableSource:
        if not Path(self._filepath).exists():
            raise DatasetError(
                f"The table '{self._filepath}' does not exist; point the catalog entry's filepath at a CSV or "
                "Parquet file."
            )
        return TableSource(self._filepath, self._load_args)

    def save(self, data: None) -> None:
        raise DatasetError(f"{self} is read-only: it is an input table.")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "load_args": self._load_args}

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def preview(self, nrows: int = 10) -> dict[str, Any]:
        """The first rows, for kedro-viz."""
        first = next(TableSource(self._filepath, self._load_args).chunks(nrows), pd.DataFrame())
        return first.head(nrows).to_dict(orient="split")


@dataclass(frozen=True)
class StagedParquet:
    """A finished Parquet file a node wrote outside the catalog's path, for :class:`ChunkedParquetDataset` to
    publish; it is moved, not copied, when both lie on one file system."""

    path: str
    rows: int


DICTIONARY_SHARE = 0.1
"""A column is dictionary-encoded when its first chunk holds at most this share of distinct values."""


def dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth dictionary-encoding: few distinct values (labels, a version). Parquet's writer would
    otherwise build a dictionary for every column and give it up for those of unique values (keys, probabilities),
    which costs more than the encoding itself and ends in a larger file."""
    limit = max(1, int(DICTIONARY_SHARE * table.num_rows))
    return [
        name
        for name, column in zip(table.column_names, table.columns, strict=True)
        if pc.count_distinct(column, mode="all").as_py() <= limit
    ]


class ParquetChunkWriter:
    """Appends DataFrames to one Parquet file (one row group per chunk); every chunk is cast to the first one's
    schema, so a chunk whose column happens to be all missing still fits."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.path, table.schema, use_dictionary=dictionary_columns(table)
            )
        elif table.schema != self._writer.schema:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)
        self.rows += len(frame)

    def abort(self) -> None:
        """Close and delete the file (after an error)."""
        if self._writer is not None:
            self._writer.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> StagedParquet:
        if self._writer is None:
            raise ValueError("No chunk was written.")
        self._writer.close()
        return StagedParquet(str(self.path), self.rows)


class ChunkedParquetDataset(ParquetDataset):
    """``pandas.ParquetDataset`` with an atomic save that also publishes a :class:`StagedParquet` file."""

    def save(self, data: pd.DataFrame | StagedParquet) -> None:
        if not isinstance(data, StagedParquet):
            super().save(data)
            return
        with self._staged_save():
            target = Path(str(self._get_save_path()))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(data.path, target)


__all__ = [
    "ChunkedParquetDataset",
    "ParquetChunkWriter",
    "StagedParquet",
    "TableChunksDataset",
    "TableSource",
    "iter_chunks",
    "table_columns",
]
