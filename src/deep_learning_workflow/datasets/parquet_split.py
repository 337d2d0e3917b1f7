"""A split's Parquet file handed to a node unread, so training can stream it instead of loading it into pandas.

:class:`ParquetSplitDataset` is a read-only view of a file another catalog entry writes (``train`` and
``train_balanced``, written by the splitting pipeline). Loading it reads only the Parquet footer and returns a
:class:`ParquetSplit`: the node asks it for the row count, the whole table (:meth:`ParquetSplit.load`, the same
frame the writing entry loads), a seeded sample, or the rows chunk by chunk (:meth:`ParquetSplit.chunks`), in the
spirit of ``PartitionedDataset``'s load functions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io.core import AbstractDataset, DatasetError


@dataclass(frozen=True)
class ParquetSplit:
    """One Parquet file of a split, read on demand.

    Args:
        path: the local path of the ``.parquet`` file.
        load_args: ``pandas.read_parquet`` arguments of the entry that writes the file (used by :meth:`load`).
    """

    path: str
    load_args: dict[str, Any] = field(default_factory=dict)

    def _file(self) -> pq.ParquetFile:
        return pq.ParquetFile(self.path)

    @property
    def num_rows(self) -> int:
        """Rows in the file (from its footer; nothing else is read)."""
        with self._file() as parquet:
            return int(parquet.metadata.num_rows)

    @property
    def columns(self) -> list[str]:
        """The file's column names."""
        with self._file() as parquet:
            return list(parquet.schema_arrow.names)

    def load(self) -> pd.DataFrame:
        """The whole table, as the catalog entry writing the file loads it."""
        return pd.read_parquet(self.path, **self.load_args)

    def head(self, rows: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The first ``rows`` rows."""
        for _, chunk in self.chunks(rows, columns):
            return chunk.head(rows)
        return pd.DataFrame(columns=list(columns or self.columns))

    def _row_group_starts(self, parquet: pq.ParquetFile) -> list[int]:
        sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
        return (
            [int(start) for start in np.concatenate([[0], np.cumsum(sizes)[:-1]])] if sizes else []
        )

    def chunks(
        self, rows: int, columns: Sequence[str] | None = None
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(position of the chunk's first row in the file, chunk)`` for chunks of at most ``rows`` rows, in file
        order; ``columns`` restricts the columns read."""
        with self._file() as parquet:
            position = 0
            for batch in parquet.iter_batches(
                batch_size=rows, columns=list(columns) if columns else None
            ):
                if batch.num_rows:
                    yield position, batch.to_pandas()
                    position += batch.num_rows

    def mixed_chunks(
        self, rows: int, columns: Sequence[str] | None = None
    ) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """``(positions of the rows in the file, chunk)`` for chunks that each take rows from every row group.

        Every row group is read front to back at once, ``rows / row groups`` rows at a time, and a chunk joins one
        piece of each: rows far apart in the file share a chunk, so a file ordered by class or by date still gives
        chunks (and, shuffled within, batches) that mix the whole file. A chunk holds at most about ``rows``
        rows plus one per row group; every row is in exactly one chunk.
        """
        names = list(columns) if columns else None
        with self._file() as parquet:
            starts = self._row_group_starts(parquet)
            step = max(1, -(-rows // max(1, len(starts))))
            readers = [
                [start, parquet.iter_batches(batch_size=step, row_groups=[group], columns=names)]
                for group, start in enumerate(starts)
            ]
            while readers:
                pieces, positions, alive = [], [], []
                for reader in readers:
                    batch = next(reader[1], None)
                    if batch is None:
                        continue
                    alive.append(reader)
                    pieces.append(batch)
                    positions.append(np.arange(reader[0], reader[0] + batch.num_rows))
                    reader[0] += batch.num_rows
                readers = alive
                if pieces:
                    table = pa.Table.from_batches(pieces)
                    yield np.concatenate(positions), table.to_pandas()

    def sample(
        self, rows: int, seed: int, columns: Sequence[str] | None = None, chunk_rows: int = 200_000
    ) -> pd.DataFrame:
        """A seeded uniform sample of ``min(rows, num_rows)`` rows without replacement, in file order.

        The rows are drawn first (``numpy.random.default_rng(seed)``), then read chunk by chunk, so at most one
        chunk and the sample are in memory. The same seed on the same file gives the same rows.
        """
        total = self.num_rows
        if rows >= total:
            return self.load() if columns is None else self.load()[list(columns)]
        chosen = np.sort(np.random.default_rng(seed).choice(total, size=rows, replace=False))
        parts = []
        for position, chunk in self.chunks(chunk_rows, columns):
            lo, hi = np.searchsorted(chosen, [position, position + len(chunk)])
            if hi > lo:
                parts.append(chunk.iloc[chosen[lo:hi] - position])
        return pd.concat(parts, ignore_index=True)

    def value_counts(self, column: str, chunk_rows: int = 500_000) -> pd.Series:
        """Rows per distinct value of ``column`` (missing values left out), read one column chunk by chunk."""
        counts: pd.Series | None = None
        for _, chunk in self.chunks(chunk_rows, [column]):
            part = chunk[column].astype(str).where(chunk[column].notna()).value_counts()
            counts = part if counts is None else counts.add(part, fill_value=0)
        return (counts if counts is not None else pd.Series(dtype="float64")).astype("int64")


class ParquetSplitDataset(AbstractDataset[None, ParquetSplit]):
    """Loads a :class:`ParquetSplit` handle of a Parquet file that another catalog entry writes.

    Example catalog entry::

        train_split:
          type: deep_learning_workflow.datasets.ParquetSplitDataset
          filepath: data/05_model_input/train.parquet

    Args:
        filepath: the local ``.parquet`` file.
        load_args: ``pandas.read_parquet`` arguments for :meth:`ParquetSplit.load`.
        metadata: free-form, e.g. kedro-viz's layer.
    """

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = PurePosixPath(filepath)
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    def load(self) -> ParquetSplit:
        if not self.exists():
            raise DatasetError(
                f"The split file '{self._filepath}' does not exist; run the splitting pipeline first "
                "(kedro run --pipelines splitting)."
            )
        return ParquetSplit(str(self._filepath), self._load_args)

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"'{self._filepath}' is a read-only view of a split; the splitting pipeline writes the file."
        )

    def _exists(self) -> bool:
        from pathlib import Path

        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "load_args": self._load_args}
