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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
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
PART_ROWS = 8192
"""Fewer rows than twice this are scored on one thread."""
SAMPLE_KEY = "__sample_key"
_DONE = object()
POSITION = "__position"


def compile_forward(serving_bundle: ServingBundle) -> tuple[Forward, str]:
    """The bundle's model as the service's forward pass, and the engine chosen (``numpy`` or ``tf.function``)."""
    schema = serving_bundle.metadata["schema"]
    probe = probe_columns({name: schema[name] for name in serving_bundle.features})
    chosen = compile_engine(serving_bundle.model, probe, label="Batch scoring")
    return chosen.forward, chosen.name


def prepare_chunk(
    chunk: pd.DataFrame, serving_bundle: ServingBundle, first_row: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One chunk of raw records validated, and as the forward pass's inputs.

    Raises:
        ValueError: as :func:`~.scoring.validate_scoring_batch`, naming the chunk's rows.
    """
    try:
        validated = validate_scoring_batch(chunk, serving_bundle)
    except ValueError as error:
        raise ValueError(f"{error} (rows {first_row} to {first_row + len(chunk) - 1})") from None
    # Categorical columns as codes: the engine looks each distinct value up once per chunk.
    return validated, coded_inputs(validated, serving_bundle.roles)


def score_prepared(
    validated: pd.DataFrame,
    inputs: dict[str, Any],
    serving_bundle: ServingBundle,
    forward: Forward,
    first_row: int,
) -> pd.DataFrame:
    """The predictions of a prepared chunk (as :func:`~.scoring.score_batch` makes them)."""
    return finish_scores(validated, forward(inputs), serving_bundle, first_row)


def finish_scores(
    validated: pd.DataFrame, scores: np.ndarray, serving_bundle: ServingBundle, first_row: int
) -> pd.DataFrame:
    """The predictions of a chunk from the forward pass's class probabilities."""
    probabilities = np.asarray(scores, dtype="float64")
    # As in predict_probabilities: float32 rows sum to 1 only within ~1e-7.
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    return predictions_frame(validated, probabilities, serving_bundle, first_row)


def score_chunk(
    chunk: pd.DataFrame, serving_bundle: ServingBundle, forward: Forward, first_row: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate and score one chunk of raw records.

    Returns:
        The validated chunk and its predictions (as :func:`~.scoring.score_batch` makes them).

    Raises:
        ValueError: as :func:`~.scoring.validate_scoring_batch`, naming the chunk's rows.
    """
    validated, inputs = prepare_chunk(chunk, serving_bundle, first_row)
    return validated, score_prepared(validated, inputs, serving_bundle, forward, first_row)


def prepared_chunks(
    chunks: Iterator[pd.DataFrame], serving_bundle: ServingBundle
) -> Iterator[tuple[int, pd.DataFrame, dict[str, Any]]]:
    """(first row, validated chunk, inputs) of each chunk."""
    first_row = 0
    for chunk in chunks:
        validated, inputs = prepare_chunk(chunk, serving_bundle, first_row)
        yield first_row, validated, inputs
        first_row += len(chunk)


class ThreadedForward:
    """A forward pass that scores a chunk as ``threads`` parts of rows at once (NumPy and TensorFlow release the
    GIL while they compute), with NumPy's BLAS on one thread per part so the parts do not oversubscribe the cores.
    """

    def __init__(self, forward: Forward, threads: int) -> None:
        self.forward = forward
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads) if threads > 1 else None

    def __call__(self, inputs: dict[str, Any]) -> np.ndarray:
        rows = len(next(iter(inputs.values())))
        if self._executor is None or rows < 2 * PART_ROWS:
            return self.forward(inputs)
        bounds = np.linspace(0, rows, self.threads + 1).astype(int).tolist()
        parts = [
            {name: values[start:stop] for name, values in inputs.items()}
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return np.concatenate(list(self._executor.map(self.forward, parts)))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """NumPy's BLAS on one thread while scoring (threadpoolctl comes with scikit-learn; without it, no limit)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def prefetched(chunks: Iterator[Any]) -> Iterator[Any]:
    """The items of ``chunks``, the next one made on a thread while the current one is used (reading, validating
    and coding the next chunk overlaps scoring this one). An error while making one is raised here, where the item
    would have come."""
    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(next, chunks, _DONE)
        while True:
            chunk = pending.result()
            if chunk is _DONE:
                return
            pending = reader.submit(next, chunks, _DONE)
            yield chunk


class DriftSample:
    """The ``size`` rows with the smallest random keys so far (a uniform sample without replacement).

    Rows whose key cannot enter the sample are dropped on arrival; the candidates are cut back to ``size`` only when
    they reach twice as many, so a chunk costs a copy of its few candidates, not a merge of the whole sample.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._parts: list[pd.DataFrame] = []
        self._keys = np.empty(0)
        # The size-th smallest key so far: a row needs a smaller one to enter.
        self._threshold = np.inf

    def add(self, validated: pd.DataFrame, keys: np.ndarray, first_row: int) -> None:
        positions = np.arange(first_row, first_row + len(validated))
        chosen = keys < self._threshold
        if not chosen.all():
            validated, keys, positions = validated[chosen], keys[chosen], positions[chosen]
        self._parts.append(validated.assign(**{SAMPLE_KEY: keys, POSITION: positions}))
        self._keys = np.concatenate([self._keys, keys])
        if len(self._keys) > 2 * self.size:
            self._parts = [self.frame()]
            self._keys = self._parts[0][SAMPLE_KEY].to_numpy()
        if len(self._keys) >= self.size:
            self._threshold = np.partition(self._keys, self.size - 1)[self.size - 1]

    def frame(self) -> pd.DataFrame | None:
        """The sample, with its keys and positions (None before any row)."""
        if not self._parts:
            return None
        merged = (
            pd.concat(self._parts, ignore_index=True) if len(self._parts) > 1 else self._parts[0]
        )
        return merged.nsmallest(self.size, SAMPLE_KEY) if len(merged) > self.size else merged


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
    compiled, chosen = compile_forward(serving_bundle)
    threads = settings.threads or os.cpu_count() or 1
    forward = ThreadedForward(compiled, threads)
    logger.info(
        "Scoring in chunks of %d rows on %d threads (engine: %s).",
        settings.chunk_rows,
        threads,
        chosen,
    )
    handle, staged = tempfile.mkstemp(prefix="predictions.partial-", suffix=".parquet")
    os.close(handle)
    writer = ParquetChunkWriter(staged)
    try:
        with one_blas_thread():
            sample = _score_chunks(scoring_batch, serving_bundle, settings, forward, writer)
        if writer.rows == 0:
            raise ValueError("Dataset 'scoring_batch' has no records to score.")
        result = writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        forward.close()
    return result, sample_in_order(sample)


def _score_chunks(
    scoring_batch: pd.DataFrame | TableSource,
    serving_bundle: ServingBundle,
    settings: ScoringSettings,
    forward: Forward,
    writer: ParquetChunkWriter,
) -> pd.DataFrame | None:
    """Score every chunk into ``writer``; the drift sample.

    Three chunks are in flight: the next one is read, validated and coded on the read-ahead thread, this one goes
    through the forward pass, and the one before is made into predictions, sampled and written on a finishing
    thread. Alone, the finishing steps (pandas, mostly holding the GIL) would leave a core idle after each forward
    pass; overlapped, they share the cores with it. Chunks are finished one at a time, in order.
    """
    random = np.random.default_rng(settings.seed)
    sample = DriftSample(settings.drift_sample_rows)
    chunks = iter_chunks(scoring_batch, settings.chunk_rows, needed_columns(serving_bundle))

    def finish(validated: pd.DataFrame, scores: np.ndarray, first_row: int) -> None:
        predictions = finish_scores(validated, scores, serving_bundle, first_row)
        sample.add(validated, random.random(len(validated)), first_row)
        writer.write(predictions)

    with ThreadPoolExecutor(1) as finisher:
        pending: Future[None] | None = None
        for first_row, validated, inputs in prefetched(prepared_chunks(chunks, serving_bundle)):
            scores = forward(inputs)
            if pending is not None:
                pending.result()
            pending = finisher.submit(finish, validated, scores, first_row)
        if pending is not None:
            pending.result()
    return sample.frame()


def sample_in_order(sample: pd.DataFrame) -> pd.DataFrame:
    """The drift sample in input order, without its random keys and positions."""
    return sample.sort_values(POSITION).drop(columns=[SAMPLE_KEY, POSITION]).reset_index(drop=True)
