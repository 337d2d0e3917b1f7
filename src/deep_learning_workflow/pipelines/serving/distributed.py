"""Batch scoring on ``dask.distributed``: one task per partition of a Parquet dataset, each running the in-process
path's :func:`~.chunked.score_chunk` on chunks of ``serving.scoring.chunk_rows`` rows.

The model is compiled once here (the service's engine) and sent to the workers once; they need neither Keras nor
the bundle folder, only read access to the input table's path. Predictions come back partition by partition, in
input order, and are appended to the staged file the catalog publishes atomically, so a failed run publishes
nothing. A worker that dies fails the run (a ``LocalCluster`` does not retry its tasks).
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.bundle import ServingBundle
from deep_learning_workflow.datasets.chunked import ParquetChunkWriter, StagedParquet, TableSource
from deep_learning_workflow.datasets.dask_cluster import DaskCluster

from .chunked import (
    POSITION,
    SAMPLE_KEY,
    Forward,
    compile_forward,
    needed_columns,
    sample_in_order,
    score_chunk,
)
from .scoring_settings import ScoringSettings

logger = logging.getLogger(__name__)


def score_partition(
    partition: pd.DataFrame,
    index: int,
    metadata: dict[str, Any],
    forward: Forward,
    settings: ScoringSettings,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Predictions of one partition (``row`` counted from the partition's start) and its seeded drift sample (with
    its random keys and positions within the partition)."""
    if partition.empty:
        return None, None
    bundle = ServingBundle(metadata)
    random = np.random.default_rng([settings.seed, index])
    predictions, samples = [], []
    for start in range(0, len(partition), settings.chunk_rows):
        chunk = partition.iloc[start : start + settings.chunk_rows]
        validated, scored = score_chunk(chunk, bundle, forward, start)
        predictions.append(scored)
        keys = random.random(len(validated))
        samples.append(
            validated.assign(
                **{SAMPLE_KEY: keys, POSITION: np.arange(start, start + len(validated))}
            ).nsmallest(settings.drift_sample_rows, SAMPLE_KEY)
        )
    sample = pd.concat(samples).nsmallest(settings.drift_sample_rows, SAMPLE_KEY)
    return pd.concat(predictions, ignore_index=True), sample


def _partitions(
    scoring_batch: pd.DataFrame | TableSource, columns: list[str], chunk_rows: int
) -> Any:
    import dask.dataframe as dd

    if isinstance(scoring_batch, pd.DataFrame):
        return dd.from_pandas(
            scoring_batch.loc[:, columns], chunksize=chunk_rows, sort=False
        ).to_delayed()
    if not scoring_batch.is_parquet:
        raise ValueError(
            f"serving.scoring.engine: dask reads a Parquet file or folder, but 'scoring_batch' is "
            f"'{scoring_batch.path}'; convert it to Parquet or use engine: local."
        )
    # One partition per row group: a task holds one row group, and a single large file still spreads over workers.
    return dd.read_parquet(scoring_batch.path, columns=columns, split_row_groups=True).to_delayed()


def score_on_dask(
    scoring_batch: pd.DataFrame | TableSource,
    serving_bundle: ServingBundle,
    settings: ScoringSettings,
    cluster: DaskCluster,
) -> tuple[StagedParquet, pd.DataFrame]:
    """Score every partition on the cluster; the same results as :func:`~.chunked.score_in_process`.

    Raises:
        ValueError: naming the partition whose records are invalid, or the cluster when a worker died; nothing is
            published.
    """
    import dask
    from distributed import KilledWorker

    forward, chosen = compile_forward(serving_bundle)
    key = serving_bundle.metadata["key"]
    handle, staged = tempfile.mkstemp(prefix="predictions.partial-", suffix=".parquet")
    os.close(handle)
    writer = ParquetChunkWriter(staged)
    sample = None
    with cluster.client() as client:
        logger.info("Scoring on Dask (%s, engine: %s).", cluster.shown_address, chosen)
        shared = client.scatter(forward, broadcast=True)
        parts = _partitions(scoring_batch, needed_columns(serving_bundle), settings.chunk_rows)
        tasks = [
            dask.delayed(score_partition)(part, index, serving_bundle.metadata, shared, settings)
            for index, part in enumerate(parts)
        ]
        futures = client.compute(tasks)
        try:
            for index, future in enumerate(futures):
                try:
                    predictions, part_sample = future.result()
                except KilledWorker as error:
                    raise ValueError(
                        f"A Dask worker of {cluster.shown_address} died while scoring partition {index} of "
                        f"{len(futures)} ({error}); nothing was published. Score again."
                    ) from None
                except ValueError as error:
                    raise ValueError(f"{error} (in Parquet partition {index})") from None
                if predictions is None:
                    continue
                if not key:
                    predictions["row"] += writer.rows
                part_sample[POSITION] += writer.rows
                writer.write(predictions)
                future.release()
                merged = part_sample if sample is None else pd.concat([sample, part_sample])
                sample = merged.nsmallest(settings.drift_sample_rows, SAMPLE_KEY)
            if writer.rows == 0:
                raise ValueError("Dataset 'scoring_batch' has no records to score.")
            return writer.close(), sample_in_order(sample)
        except BaseException:
            client.cancel(futures)
            writer.abort()
            raise
