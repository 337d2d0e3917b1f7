"""The batch-scoring node: the scoring batch validated and scored in chunks, in this process or on Dask."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from deep_learning_workflow.bundle import ServingBundle
from deep_learning_workflow.datasets.chunked import StagedParquet, TableSource
from deep_learning_workflow.datasets.dask_cluster import DaskCluster

from .chunked import check_scoring_columns, score_in_process
from .distributed import score_on_dask
from .nodes import _params


def score_scoring_batch(
    scoring_batch: pd.DataFrame | TableSource,
    serving_bundle: ServingBundle,
    serving: Mapping[str, Any],
    dask_cluster: DaskCluster | None = None,
) -> tuple[StagedParquet, pd.DataFrame]:
    """Validate and score the scoring batch chunk by chunk into a staged Parquet file.

    Args:
        scoring_batch: a DataFrame, or a table read in chunks (``TableChunksDataset``).
        serving_bundle: the exported bundle.
        serving: ``params:serving``; ``scoring.chunk_rows`` rows are held at a time.
        dask_cluster: where ``scoring.engine: dask`` runs (a LocalCluster when None).

    Returns:
        The staged predictions (published atomically by ``ChunkedParquetDataset``), and a seeded uniform sample of
        at most ``scoring.drift_sample_rows`` validated records, in input order, for the drift report.

    Raises:
        ValueError: naming missing columns, a bad chunk's rows, an empty table or a broken model; the staged file
            is removed and nothing is published.
    """
    settings = _params(serving).scoring
    check_scoring_columns(scoring_batch, serving_bundle)
    if settings.engine == "dask":
        return score_on_dask(scoring_batch, serving_bundle, settings, dask_cluster or DaskCluster())
    return score_in_process(scoring_batch, serving_bundle, settings)
