"""Batch scoring in chunks of a fixed number of rows, with constant memory.

Each chunk goes through the same steps as a small batch: :func:`~.scoring.validate_scoring_batch`, the model's
forward pass, :func:`~.scoring.predictions_frame`. The forward pass is the REST service's engine (the model compiled
into a NumPy pass, checked against the Keras model at compile time, or a ``tf.function`` when it cannot be
compiled). Predictions are appended to a staged Parquet file that the catalog renames into place at the end.
The drift report reads a seeded uniform sample of the validated records of bounded size.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
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
from deep_learning_workflow.inference import compile_engine, probe_columns
from deep_learning_workflow.inference.optimise_batch import coded_inputs

from .scoring import predictions_frame, validate_scoring_batch
from .scoring_settings import ScoringSettings

logger = logging.getLogger(__name__)

Forward = Callable[[dict[str, Any]], np.ndarray]
SAMPLE_KEY = "__sample_key"
POSITION = "__position"


def compile_forward(serving_bundle: ServingBundle) -> tuple[Forward, str]:
    """The bundle's model as the service's forward pass, and the engine chosen (``numpy`` or ``tf.function``)."""
    schema = serving_bundle.metadata["schema"]
    probe = probe_columns({name: schema[name] for name in serving_bundle.features})
    chosen = compile_engine(serving_bundle.model, probe, label="Batch scoring")
    return chosen.forward, chosen.name


def score_chunk(
    chunk: pd.DataFrame, serving_bundle: ServingBundle, forward: Forward, first_row: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate and score one chunk of raw records.

    Returns:
        The validated chunk and its predictions (as :func:`~.scoring.score_batch` makes them).

    Raises:
        ValueError: as :func:`~.scoring.validate_scoring_batch`, naming the chunk's rows.
    """
    try:
        validated = validate_scoring_batch(chunk, serving_bundle)
    except ValueError as error:
        raise ValueError(f"{error} (rows {first_row} to {first_row + len(chunk) - 1})") from None
    # Categorical columns as codes: the engine looks each distinct value up once per chunk.
    inputs = coded_inputs(validated, serving_bundle.roles)
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


def score_in_process(
    scoring_batch: pd.DataFrame | TableSource,
    serving_bundle: ServingBundle,
    settings: ScoringSettings,
) -> tuple[StagedParquet, pd.DataFrame]:
    """Validate and score the scoring batch chunk by chunk in this process, into a staged Parquet file.

    Returns:
        The staged predictions and the drift sample, as :func:`~.batch_scoring.score_scoring_batch` returns them.
    """
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
