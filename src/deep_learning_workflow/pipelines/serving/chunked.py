"""Batch scoring in chunks of a fixed number of rows, with constant memory.

Each chunk goes through the same steps as a small batch: :func:`~.nodes.validate_scoring_batch`, the model's
forward pass, :func:`~.nodes.predictions_frame`. The forward pass is the REST service's engine (the model compiled
into a NumPy pass, checked against the Keras model at compile time, or a ``tf.function`` when it cannot be
compiled). Predictions are appended to a staged Parquet file that the catalog renames into place at the end.
The drift report reads a seeded uniform sample of the validated records of bounded size.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.bundle import ServingBundle
from deep_learning_workflow.datasets.chunked import (
    ParquetChunkWriter,
    StagedParquet,
    TableSource,
    iter_chunks,
    table_columns,
)
from deep_learning_workflow.datasets.dask_cluster import DaskCluster
from deep_learning_workflow.model_inputs import to_model_inputs

# The service's model engine; the one place this package names it.
from deep_learning_workflow.service import loader as engine

from .nodes import _params, predictions_frame, validate_scoring_batch

logger = logging.getLogger(__name__)

Forward = Callable[[dict[str, Any]], np.ndarray]
SAMPLE_KEY = "__sample_key"
POSITION = "__position"


def compile_forward(serving_bundle: ServingBundle) -> tuple[Forward, str]:
    """The bundle's model as the service's forward pass, and the engine chosen (``numpy`` or ``tf.function``)."""
    validator = engine.RecordValidator(
        serving_bundle.features, serving_bundle.metadata["schema"], serving_bundle.metadata["key"]
    )
    kinds = {
        name: "numeric" if kind == "numeric" else "string" for name, kind in validator.kinds.items()
    }
    model = serving_bundle.model
    try:
        probe = engine.probe_columns(validator, serving_bundle.metadata)
        forward = engine.optimise(engine.compile_forward(model), probe)
        excess = engine.check_parity(model, forward, probe, kinds)
        if excess > 0:
            raise ValueError(f"the NumPy pass differs from the Keras model by {excess:.3g}")
        return forward, "numpy"
    except Exception as reason:  # any failure to compile means: score through TensorFlow
        logger.warning("Scoring through tf.function, not the NumPy fast path: %s", reason)
        return engine.TensorFlowForward(model, kinds), "tf.function"


def score_chunk(
    chunk: pd.DataFrame, serving_bundle: ServingBundle, forward: Forward, first_row: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate and score one chunk of raw records.

    Returns:
        The validated chunk and its predictions (as :func:`~.nodes.score_batch` makes them).

    Raises:
        ValueError: as :func:`~.nodes.validate_scoring_batch`, naming the chunk's rows.
    """
    try:
        validated = validate_scoring_batch(chunk, serving_bundle)
    except ValueError as error:
        raise ValueError(f"{error} (rows {first_row} to {first_row + len(chunk) - 1})") from None
    inputs = to_model_inputs(validated, serving_bundle.roles)
    probabilities = np.asarray(forward(inputs), dtype="float64")
    # As in predict_probabilities: float32 rows sum to 1 only within ~1e-7.
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    return validated, predictions_frame(validated, probabilities, serving_bundle, first_row)


def _keep_sample(
    sample: pd.DataFrame | None,
    validated: pd.DataFrame,
    keys: np.ndarray,
    first_row: int,
    size: int,
) -> pd.DataFrame:
    """The ``size`` rows with the smallest random keys so far (a uniform sample without replacement)."""
    candidates = validated.assign(
        **{SAMPLE_KEY: keys, POSITION: np.arange(first_row, first_row + len(validated))}
    )
    if sample is not None and len(sample) >= size:
        candidates = candidates[candidates[SAMPLE_KEY] < sample[SAMPLE_KEY].max()]
    merged = candidates if sample is None else pd.concat([sample, candidates], ignore_index=True)
    return merged.nsmallest(size, SAMPLE_KEY) if len(merged) > size else merged


def needed_columns(serving_bundle: ServingBundle) -> list[str]:
    """The key (if any) and the features: the columns read from the scoring batch."""
    key = serving_bundle.metadata["key"]
    return ([key] if key else []) + list(serving_bundle.features)


def check_scoring_columns(table: pd.DataFrame | TableSource, serving_bundle: ServingBundle) -> None:
    """Stop before reading any rows when the table lacks a column the model needs."""
    present = set(table_columns(table))
    missing = [column for column in needed_columns(serving_bundle) if column not in present]
    if missing:
        raise ValueError(
            f"Dataset 'scoring_batch' lacks the columns {missing} that the model (version "
            f"{serving_bundle.model_version}) needs; it has {sorted(present)}."
        )


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
        from .distributed import score_on_dask

        return score_on_dask(scoring_batch, serving_bundle, settings, dask_cluster or DaskCluster())
    forward, chosen = compile_forward(serving_bundle)
    logger.info("Scoring in chunks of %d rows (engine: %s).", settings.chunk_rows, chosen)
    handle, staged = tempfile.mkstemp(prefix="predictions.partial-", suffix=".parquet")
    os.close(handle)
    writer = ParquetChunkWriter(staged)
    random = np.random.default_rng(settings.seed)
    sample = None
    try:
        for chunk in iter_chunks(
            scoring_batch, settings.chunk_rows, needed_columns(serving_bundle)
        ):
            validated, predictions = score_chunk(chunk, serving_bundle, forward, writer.rows)
            keys = random.random(len(validated))
            sample = _keep_sample(sample, validated, keys, writer.rows, settings.drift_sample_rows)
            writer.write(predictions)
        if writer.rows == 0:
            raise ValueError("Dataset 'scoring_batch' has no records to score.")
        result = writer.close()
    except BaseException:
        writer.abort()
        raise
    return result, sample_in_order(sample)


def sample_in_order(sample: pd.DataFrame) -> pd.DataFrame:
    """The drift sample in input order, without its random keys and positions."""
    return sample.sort_values(POSITION).drop(columns=[SAMPLE_KEY, POSITION]).reset_index(drop=True)
