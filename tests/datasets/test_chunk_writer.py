"""The chunked Parquet writer keeps every value and dictionary-encodes only the columns of few distinct values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from deep_learning_workflow.datasets.chunked import ParquetChunkWriter


def _chunk(start: int, rows: int) -> pd.DataFrame:
    positions = np.arange(start, start + rows)
    return pd.DataFrame(
        {
            "key": [f"K{i:07d}" for i in positions],
            "probability": (positions % 997) / 997.0 + positions * 1e-9,
            "label": np.where(positions % 3 == 0, "Yes", "No"),
            "version": "v1",
        }
    )


def test_writer_keeps_the_values_and_encodes_only_repeated_columns_as_dictionaries(tmp_path):
    path = tmp_path / "out.parquet"
    writer = ParquetChunkWriter(path)
    chunks = [_chunk(0, 2000), _chunk(2000, 1500)]
    for chunk in chunks:
        writer.write(chunk)
    staged = writer.close()
    assert staged.rows == 3500
    pd.testing.assert_frame_equal(
        pd.read_parquet(path), pd.concat(chunks, ignore_index=True), check_dtype=False
    )
    metadata = pq.ParquetFile(path).metadata
    for group in range(metadata.num_row_groups):
        encodings = {
            metadata.schema.column(i).name: metadata.row_group(group).column(i).encodings
            for i in range(metadata.num_columns)
        }
        assert any("DICTIONARY" in e for e in encodings["label"])
        assert any("DICTIONARY" in e for e in encodings["version"])
        assert not any("DICTIONARY" in e for e in encodings["key"])
        assert not any("DICTIONARY" in e for e in encodings["probability"])
