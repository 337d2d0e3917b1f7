"""Training from a split's Parquet file through ``tf.data``, chunk by chunk, when the split is too large for pandas.

:func:`train_streaming_model` is :func:`~.fitting.train_model` for a training split of more rows than
``params:modelling.streaming.min_rows``. It takes :class:`~deep_learning_workflow.datasets.ParquetSplit` handles
and never holds the split in memory:

- **Preprocessing** is adapted (:func:`~.preprocessing.fit_preprocessing`) on a uniform sample of
  ``streaming.adapt_sample_rows`` rows of ``train``, drawn with ``params:seed``, so every seed's model shares it.
  The classes are every class of ``train``'s target, read one column at a time.
- **The fitted rows** are read ``streaming.chunk_rows`` at a time, each chunk joining rows from every row group of
  the file (:meth:`ParquetSplit.mixed_chunks`), shuffled within the chunk with a new order every epoch, passed
  through the model's preprocessing layers and handed to Keras through ``tf.data.Dataset.from_generator``.
- **The early-stopping holdout** (``early_stopping.holdout``) is carved from the stream: a row is held out when a
  uniform draw keyed by ``(model seed, row position in the file)`` falls below the share, so the same rows are held
  out in every epoch and whatever the chunk size; held-out rows are never fitted. Early stopping watches at most
  ``streaming.adapt_sample_rows`` of them (a uniform subset by the same draw). Unlike the in-memory holdout, it is
  not stratified; a class without a watched row stops training with a message.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, target_labels
from deep_learning_workflow.metrics import positive_index

from .fitting import (
    HeadFit,
    TrainingResult,
    build_seeded_parts,
    compile_model,
    train_model,
    training_result,
)
from .labels import encode_labels
from .patience import early_stopping, monitored_metric
from .preprocessing import as_params, as_roles, check_roles_for_modelling, fit_preprocessing
from .schema import ModellingParams
from .scoring import TRAIN_METRIC_ROWS, epoch_metrics, prepare

logger = logging.getLogger(__name__)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def streams(rows: int, params: ModellingParams | Any) -> bool:
    """Whether a training split of ``rows`` rows is streamed (more than ``streaming.min_rows``)."""
    return rows > as_params(params).streaming.min_rows


def training_inputs(
    train_split: Any, train_balanced_split: Any, params: ModellingParams | Any, seed: int
) -> tuple[Any, Any, Callable[..., TrainingResult], bool]:
    """The training rows, the fitted rows, the function that trains on them, and whether they are streamed.

    Split handles and :func:`train_streaming_model` (adapting on a sample drawn with ``seed``, ``params:seed``)
    when either split has more rows than ``streaming.min_rows``; else both loaded into pandas and
    :func:`~.fitting.train_model`.
    """
    params = as_params(params)
    if isinstance(train_split, pd.DataFrame) and isinstance(train_balanced_split, pd.DataFrame):
        # Already in memory (an in-memory catalog): nothing to stream.
        return train_split, train_balanced_split, train_model, False
    rows = max(train_split.num_rows, train_balanced_split.num_rows)
    if streams(rows, params):
        logger.info(
            "Streaming %d training rows from Parquet (params:modelling.streaming.min_rows = %d).",
            rows,
            params.streaming.min_rows,
        )
        return (
            train_split,
            train_balanced_split,
            partial(train_streaming_model, sample_seed=seed),
            True,
        )
    return train_split.load(), train_balanced_split.load(), train_model, False


def row_draws(seed: int, positions: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) per row, a function of the seed and the row's position only (SplitMix64)."""
    with np.errstate(over="ignore"):
        z = positions.astype(np.uint64) + (np.uint64(seed) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype("float64") * 2.0**-53


def label_counts(split: Any, target: str, chunk_rows: int) -> pd.Series:
    """Rows per class of a split's target (labels as :func:`target_labels` spells them), one column read at a time."""
    counts = pd.Series(dtype="int64")
    for _, chunk in split.chunks(chunk_rows, [target]):
        counts = counts.add(target_labels(chunk[target]).value_counts(), fill_value=0)
    return counts.astype("int64").sort_index()


def _refuse_unsupported(params: ModellingParams) -> None:
    unsupported = []
    if params.augmentation.enabled:
        unsupported.append("params:modelling.augmentation (set every value to 0)")
    if params.transfer.freeze:
        unsupported.append("params:modelling.transfer.freeze (set it to [])")
    if params.distribution == "multi_worker_mirrored":
        unsupported.append("params:modelling.distribution: multi_worker_mirrored (use default)")
    if unsupported:
        raise ValueError(
            "The training split has more rows than params:modelling.streaming.min_rows "
            f"({params.streaming.min_rows}), so it is streamed, and streaming does not support "
            + "; ".join(unsupported)
            + ". Change those settings or raise streaming.min_rows to train in memory."
        )


def train_streaming_model(  # noqa: PLR0913
    train: Any,
    val: pd.DataFrame,
    roles: ColumnRoles | Any,
    params: ModellingParams | Any,
    seed: int,
    *,
    sample_seed: int,
    fit_on: Any = None,
    callbacks: Sequence[Any] = (),
    primary_metric: str = "pr_auc",
    verbose: int = 0,
    transfer_sources: Any = None,
) -> TrainingResult:
    """Adapt the preprocessing on a sample of ``train``, build the model and fit it on the ``fit_on`` stream.

    Args:
        train: the :class:`ParquetSplit` of the real training rows (the sample and the classes come from it).
        val: validation rows; watched by early stopping only when ``early_stopping.holdout`` is 0.
        roles: column roles, resolved on the sample.
        params: ``params:modelling``.
        seed: the model's seed (weights, holdout, shuffling).
        sample_seed: the seed of the adaptation sample (``params:seed``: the same for every seed's model).
        fit_on: the :class:`ParquetSplit` of the rows fitted (``train_balanced``); ``train`` when None.
        callbacks: extra Keras callbacks.
        primary_metric: ``params:problem.primary_metric``.
        verbose: Keras ``fit`` verbosity.
        transfer_sources: as for :func:`~.fitting.train_model` (warm start only).

    Returns:
        The :class:`~.fitting.TrainingResult`.

    Raises:
        ValueError: on settings streaming does not support, bad roles or labels, before anything is fitted.
        TrainingDivergedError: when the loss becomes NaN.
    """
    params = as_params(params)
    settings = params.streaming
    _refuse_unsupported(params)
    sample = train.sample(settings.adapt_sample_rows, sample_seed, chunk_rows=settings.chunk_rows)
    roles = check_roles_for_modelling(sample, as_roles(roles), params, "train")
    classes = list(label_counts(train, roles.target, settings.chunk_rows).index)
    positive_index(classes, roles.positive_class)
    monitored_metric(params, primary_metric)
    encode_labels(val[roles.target], classes, "val")
    preprocessing = fit_preprocessing(sample, roles, params)
    del sample

    parts = build_seeded_parts(preprocessing, roles, params, len(classes), seed, transfer_sources)
    fit_name = "train" if fit_on is None else "train_balanced"
    fitted = fit_head_streaming(
        parts,
        train if fit_on is None else fit_on,
        val,
        roles,
        classes,
        params,
        seed,
        primary_metric=primary_metric,
        fit_name=fit_name,
        callbacks=callbacks,
        verbose=verbose,
    )
    return training_result(parts, fitted, classes, roles, preprocessing, params, seed)


class StreamPlan(NamedTuple):
    """What one pass over the fitted stream found before training."""

    batches: int
    """Batches per epoch (each chunk's fitted rows cut into ``batch_size`` batches)."""
    counts: np.ndarray
    """Fitted rows per class."""
    watched: pd.DataFrame | None
    """The holdout rows early stopping watches (None without a holdout)."""
    metric_rows: pd.DataFrame
    """A uniform sample of about :data:`TRAIN_METRIC_ROWS` fitted rows, scored each epoch."""


def _masks(
    positions: np.ndarray, params: ModellingParams, seed: int, total: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: fitted, and watched by early stopping (a subset of the held-out rows)."""
    share = params.early_stopping.holdout if params.early_stopping.enabled else 0.0
    draws = row_draws(seed, positions)
    if share <= 0:
        return np.ones(len(positions), dtype=bool), np.zeros(len(positions), dtype=bool)
    kept = min(1.0, params.streaming.adapt_sample_rows / max(1.0, share * total))
    return draws >= share, draws < share * kept


def plan_stream(
    split: Any,
    roles: ColumnRoles,
    classes: list[str],
    params: ModellingParams,
    seed: int,
    name: str,
) -> StreamPlan:
    """Check every fitted label and count what training needs, in one pass over the stream."""
    settings = params.streaming
    columns = [*roles.features, roles.target]
    total = split.num_rows
    metric_share = min(1.0, 2 * TRAIN_METRIC_ROWS / max(1, total))
    batches, counts, watched, metric = 0, np.zeros(len(classes)), [], []
    for positions, chunk in split.mixed_chunks(settings.chunk_rows, columns):
        labels = encode_labels(chunk[roles.target], classes, name)
        fitted, held = _masks(positions, params, seed, total)
        counts += labels[fitted].sum(axis=0)
        batches += math.ceil(int(fitted.sum()) / params.batch_size)
        watched.append(chunk[held])
        metric.append(chunk[fitted & (row_draws(seed + 1, positions) < metric_share)])
    missing = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if missing or batches == 0:
        raise ValueError(
            f"Dataset '{name}' leaves no fitted row of the classes {missing or classes}."
        )
    holdout = params.early_stopping.enabled and params.early_stopping.holdout > 0
    return StreamPlan(
        batches,
        counts,
        pd.concat(watched, ignore_index=True) if holdout else None,
        pd.concat(metric, ignore_index=True),
    )


def _dataset(  # noqa: PLR0913
    parts: Any,
    split: Any,
    roles: ColumnRoles,
    classes: list[str],
    params: ModellingParams,
    seed: int,
    weights: np.ndarray | None,
) -> Any:
    """The fitted rows as a repeated ``tf.data`` stream of (inputs, one-hot labels[, weights]) batches."""
    import tensorflow as tf

    columns = [*roles.features, roles.target]
    total = split.num_rows
    epochs = iter(range(1 << 30))

    def batches():
        rng = np.random.default_rng([seed, next(epochs)])
        for positions, chunk in split.mixed_chunks(params.streaming.chunk_rows, columns):
            fitted, _ = _masks(positions, params, seed, total)
            rows = chunk[fitted]
            x = prepare(parts.preprocessor, rows, roles)
            y = encode_labels(rows[roles.target], classes, "train")
            order = rng.permutation(len(rows))
            for start in range(0, len(rows), params.batch_size):
                take = order[start : start + params.batch_size]
                batch = ({k: v[take] for k, v in x.items()}, y[take])
                yield (
                    (*batch, (y[take] @ weights).astype("float32"))
                    if weights is not None
                    else batch
                )

    outputs = parts.preprocessor.output
    x_spec = {
        k: tf.TensorSpec((None, *tuple(t.shape[1:])), tf.as_dtype(t.dtype))
        for k, t in outputs.items()
    }
    spec = (x_spec, tf.TensorSpec((None, len(classes)), tf.float32))
    if weights is not None:
        spec = (*spec, tf.TensorSpec((None,), tf.float32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
    return dataset.repeat().prefetch(2)


def fit_head_streaming(  # noqa: PLR0913
    parts: Any,
    split: Any,
    val: pd.DataFrame,
    roles: ColumnRoles,
    classes: list[str],
    params: ModellingParams,
    seed: int,
    *,
    primary_metric: str = "pr_auc",
    fit_name: str = "train",
    callbacks: Sequence[Any] = (),
    verbose: int = 0,
) -> HeadFit:
    """:func:`~.fitting.fit_head` on a stream: the same callbacks, the holdout carved from the stream."""
    import keras

    monitor, mode = monitored_metric(params, primary_metric)
    with parts.head.distribute_strategy.scope():
        compile_model(parts.head, params)
    plan = plan_stream(split, roles, classes, params, seed, fit_name)
    watched, watched_name = val, "val"
    if plan.watched is not None:
        watched, watched_name = plan.watched, f"{fit_name} (early-stopping holdout)"
    y_val = encode_labels(watched[roles.target], classes, watched_name)
    if (y_val.sum(axis=0) == 0).any():
        raise ValueError(
            f"The early-stopping holdout of '{fit_name}' holds no row of some class; raise "
            "params:modelling.early_stopping.holdout or streaming.adapt_sample_rows, or set holdout to 0."
        )
    y_metric = encode_labels(plan.metric_rows[roles.target], classes, fit_name)
    scores = epoch_metrics(
        (prepare(parts.preprocessor, plan.metric_rows, roles), y_metric),
        (prepare(parts.preprocessor, watched, roles), y_val),
        classes,
        roles.positive_class,
        extra=[monitor[len("val_") :]],
        seed=seed,
    )
    early = early_stopping(params, monitor, mode, y_val)
    weights = None
    if params.class_weight == "balanced":
        weights = (plan.counts.sum() / (len(classes) * plan.counts)).astype("float32")
    fitted = parts.head.fit(
        _dataset(parts, split, roles, classes, params, seed, weights),
        steps_per_epoch=plan.batches,
        epochs=params.epochs,
        shuffle=False,  # the stream shuffles within each chunk itself
        callbacks=[
            scores,
            keras.callbacks.TerminateOnNaN(),
            *([early] if early is not None else []),
            *callbacks,
        ],
        verbose=verbose,
    )
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    if early is not None and early.best_epoch is not None and monitor in history:
        best_epoch = int(early.best_epoch)
    else:
        best_epoch = len(history.get("loss", [])) - 1
    return HeadFit(history, best_epoch, early.patience if early is not None else None)
