"""Train a model: :func:`train_model` is the one way the project trains one.

The modelling pipeline calls it once per seed and tuning calls it once per trial (with its own callbacks): it fits
the preprocessing on train (:mod:`.preprocessing`), builds the family's model (:mod:`.builder`), starts layers from
the transfer sources (:mod:`.transfer`) and fits the head on preprocessed arrays. TensorFlow and Keras are
imported inside the functions that need them so that importing this module stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, target_classes
from deep_learning_workflow.metrics import positive_index

from . import augmentation, transfer
from .builder import ModelParts, build_model_parts
from .holdout import split_holdout
from .labels import balanced_sample_weights, encode_labels
from .patience import early_stopping, early_stopping_patience, monitored_metric
from .phases import fit_in_phases
from .preprocessing import as_params, as_roles, check_roles_for_modelling, fit_preprocessing
from .schema import ModellingParams
from .scoring import epoch_metrics, prepare

# The helpers that moved to their own modules stay importable from here.
__all__ = [
    "HeadFit",
    "TrainingDivergedError",
    "TrainingResult",
    "balanced_sample_weights",
    "build_seeded_parts",
    "check_finite_training",
    "compile_model",
    "distribution_strategy",
    "early_stopping",
    "early_stopping_patience",
    "encode_labels",
    "fit_head",
    "fit_in_phases",
    "monitored_metric",
    "multi_worker_strategy",
    "set_seed",
    "train_model",
    "training_result",
]


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite; the model is broken and must not be saved."""


class TrainingResult(NamedTuple):
    """A trained model and how it got there."""

    model: Any
    """The Keras model, weights of the best epoch restored when early stopping is on."""
    history: dict[str, list[float]]
    """Per-epoch ``loss``, ``val_loss`` and the metrics of :func:`~.scoring.epoch_metrics` (train and ``val_``)."""
    best_epoch: int
    """0-based epoch whose weights the model holds."""
    classes: list[str]
    """The class of each probability column."""
    roles: ColumnRoles
    """The resolved column roles the model takes."""
    preprocessing: dict[str, Any]
    """The fitted preprocessing state (see :func:`~.preprocessing.fit_preprocessing`)."""
    preprocessor: Any = None
    """The model's preprocessing view (raw records -> the head's inputs), sharing its layers."""
    head: Any = None
    """The model's trained head (preprocessing outputs -> probabilities), sharing its layers."""
    patience: int | None = None
    """The early-stopping patience used (``auto`` resolved on the rows watched); None when early stopping is off."""


def _optimizer(params: ModellingParams, learning_rate: float | None = None) -> Any:
    import keras

    rate = learning_rate or params.learning_rate
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=params.momentum)
    if params.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=params.weight_decay)
    return keras.optimizers.Adam(learning_rate=rate)


def compile_model(model: Any, params: ModellingParams, learning_rate: float | None = None) -> Any:
    """Compile with the configured optimiser and categorical cross-entropy; metrics come from :func:`epoch_metrics`.

    A head of several members (output (rows, members, classes)) is trained on the mean of the members' losses.
    """
    from .layers import mean_member_crossentropy

    members = len(model.output.shape) == 3
    model.compile(
        optimizer=_optimizer(params, learning_rate),
        loss=mean_member_crossentropy if members else "categorical_crossentropy",
        steps_per_execution=params.steps_per_execution,
    )
    return model


def distribution_strategy(name: str) -> Any:
    """The ``tf.distribute`` strategy of ``params:modelling.distribution``.

    ``multi_worker_mirrored`` reads the cluster from the ``TF_CONFIG`` environment variable that every worker is
    started with (TensorFlow's own convention); it is :func:`multi_worker_strategy`, the process's one.
    """
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return multi_worker_strategy()
    return tf.distribute.get_strategy()


@functools.cache
def multi_worker_strategy() -> Any:
    """The process's ``tf.distribute.MultiWorkerMirroredStrategy``, created on the first call.

    TensorFlow sets up the workers' collective communication once per process, and only before any other
    TensorFlow operation has run; so there is one strategy per process, and ``kedro run`` creates it before the
    first node (:class:`deep_learning_workflow.distribution_hooks.MultiWorkerHook`). Creating it waits until every
    worker of ``TF_CONFIG`` has started.
    """
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


def set_seed(seed: int) -> None:
    """The one place the workflow seeds Python, NumPy and the backend before a model is built and trained."""
    import keras

    keras.utils.set_random_seed(int(seed))


def train_model(
    train: pd.DataFrame,
    val: pd.DataFrame,
    roles: ColumnRoles | Mapping[str, Any],
    params: ModellingParams | Mapping[str, Any],
    seed: int,
    *,
    fit_on: pd.DataFrame | None = None,
    callbacks: Sequence[Any] = (),
    primary_metric: str = "pr_auc",
    verbose: int = 0,
    transfer_sources: Any = None,
) -> TrainingResult:
    """Fit the preprocessing on ``train``, build, compile and train one model; ``val`` is not fitted on.

    Args:
        train: the real training rows; the preprocessing is adapted on them only, and the classes are theirs.
        val: validation rows; early stopping (and the callbacks' ``val_`` logs) watch them only when
            ``params:modelling.early_stopping.holdout`` is 0, else a holdout of the fitted rows (:func:`fit_head`).
        roles: column roles (``params:columns``), resolved on ``train`` here.
        params: ``params:modelling``.
        seed: the seed of this model (``params:seed`` + offset); set once, here, before building.
        fit_on: the rows the weights are fitted on, e.g. ``train_balanced``; ``train`` when None.
        callbacks: extra Keras callbacks (e.g. an Optuna pruning callback watching ``val_<primary_metric>``).
        primary_metric: ``params:problem.primary_metric``; early stopping watches it unless
            ``params:modelling.early_stopping.monitor`` says otherwise.
        verbose: Keras ``fit`` verbosity.
        transfer_sources: the warm-start model and word vectors (:class:`.transfer.TransferSources`) that
            ``params:modelling.transfer`` starts layers from; see :mod:`.transfer`.

    Returns:
        The :class:`TrainingResult`.

    Raises:
        TrainingDivergedError: when the loss becomes NaN (training stops at once; nothing is returned).
        ValueError: on invalid parameters, roles naming missing columns, or unknown target classes.
    """
    params = as_params(params)
    roles = check_roles_for_modelling(train, as_roles(roles), params, "train")
    fit_frame = train if fit_on is None else fit_on
    for name, frame in (("val", val), ("train_balanced", fit_frame)):
        missing = [c for c in [*roles.features, roles.target] if c not in frame.columns]
        if missing:
            raise ValueError(
                f"Dataset '{name}' lacks the columns {missing} named in params:columns."
            )
    classes = target_classes(train[roles.target])
    positive_index(classes, roles.positive_class)
    # A bad metric or label fails here, before the preprocessing is fitted and the model built.
    monitored_metric(params, primary_metric)
    encode_labels(
        fit_frame[roles.target], classes, "train_balanced" if fit_on is not None else "train"
    )
    encode_labels(val[roles.target], classes, "val")
    preprocessing = fit_preprocessing(train, roles, params)

    parts = build_seeded_parts(preprocessing, roles, params, len(classes), seed, transfer_sources)
    fitted = fit_head(
        parts,
        fit_frame,
        val,
        roles,
        classes,
        params,
        seed,
        primary_metric=primary_metric,
        fit_name="train_balanced" if fit_on is not None else "train",
        callbacks=callbacks,
        augment_with=preprocessing,
        verbose=verbose,
    )
    return training_result(parts, fitted, classes, roles, preprocessing, params, seed)


def build_seeded_parts(
    preprocessing: Any,
    roles: ColumnRoles,
    params: ModellingParams,
    n_classes: int,
    seed: int,
    transfer_sources: Any = None,
) -> Any:
    """The model's parts built under ``seed`` in the distribution strategy's scope, warm-started when asked."""
    set_seed(seed)
    with distribution_strategy(params.distribution).scope():
        parts = build_model_parts(preprocessing, roles, params, n_classes)
        transfer.warm_start(parts, roles, params, transfer_sources)
    return parts


def training_result(  # noqa: PLR0913 - the pieces one training run returns
    parts: Any,
    fitted: HeadFit,
    classes: list[str],
    roles: ColumnRoles,
    preprocessing: Any,
    params: ModellingParams,
    seed: int,
) -> TrainingResult:
    """The :class:`TrainingResult` of a fitted head, once its losses and weights are checked finite."""
    check_finite_training(fitted.history, parts.model, params, seed)
    return TrainingResult(
        parts.model,
        fitted.history,
        fitted.best_epoch,
        classes,
        roles,
        preprocessing,
        parts.preprocessor,
        parts.head,
        fitted.patience,
    )


def check_finite_training(
    history: Mapping[str, Sequence[float]], model: Any, params: ModellingParams, seed: int
) -> None:
    """Raise :class:`TrainingDivergedError` when the loss or a weight became NaN or infinite."""
    losses = np.asarray(history.get("loss", []), dtype="float64")
    if losses.size == 0 or not np.isfinite(losses).all() or not _weights_finite(model):
        epoch = int(np.argmin(np.isfinite(losses))) + 1 if losses.size else 1
        raise TrainingDivergedError(
            f"Training diverged (the loss became NaN or infinite at epoch {epoch} with seed {seed}); "
            "no model is kept. Lower params:modelling.learning_rate "
            f"(now {params.learning_rate}), turn on batch_norm, or check the inputs for extreme values."
        )


class HeadFit(NamedTuple):
    """What :func:`fit_head` did."""

    history: dict[str, list[float]]
    """Per-epoch ``loss``, ``val_loss`` and the metrics of :func:`~.scoring.epoch_metrics` (train and ``val_``)."""
    best_epoch: int
    """0-based epoch whose weights the head holds (the last one when early stopping is off)."""
    patience: int | None = None
    """The early-stopping patience used; None when early stopping is off."""


def fit_head(
    parts: ModelParts,
    fit_on: pd.DataFrame,
    val: pd.DataFrame,
    roles: ColumnRoles,
    classes: Sequence[str],
    params: ModellingParams,
    seed: int,
    *,
    primary_metric: str = "pr_auc",
    fit_name: str = "train",
    learning_rate: float | None = None,
    steps_per_execution: int | None = None,
    epochs: int | None = None,
    callbacks: Sequence[Any] = (),
    augment_with: Mapping[str, Any] | None = None,
    verbose: int = 0,
) -> HeadFit:
    """Compile the head of ``parts`` and fit it on the preprocessed ``fit_on`` rows; early stopping watches a holdout.

    The one fitting loop of the project: :func:`train_model` trains a new model with it and pruning fine-tunes a
    pruned one. Labels are one-hot in the order of ``classes``, rows are weighted as ``params:modelling.class_weight``
    says, the metrics of :func:`~.scoring.epoch_metrics` are logged each epoch, training stops on a NaN loss and,
    with ``params:modelling.early_stopping`` on, the best epoch's weights are restored. The epoch is chosen on a
    stratified holdout of ``fit_on`` (``early_stopping.holdout``, :func:`~.holdout.split_holdout`, drawn with
    ``seed``) whose rows are not fitted, or on ``val`` when the holdout is 0; the ``val_`` logs are those rows'.

    Args:
        parts: the model built by :func:`~.builder.build_model_parts`; its head is compiled and fitted in place.
        fit_on: the rows the weights are fitted on.
        val: validation rows (early stopping and the ``val_`` logs, only when ``early_stopping.holdout`` is 0).
        roles: resolved column roles.
        classes: the class of each probability column.
        params: ``params:modelling``.
        seed: the model's seed (metric resampling and augmentation).
        primary_metric: ``params:problem.primary_metric``, the metric early stopping watches by default.
        fit_name: the dataset name of ``fit_on`` in error messages.
        learning_rate: the optimiser's rate; ``params.learning_rate`` when None.
        steps_per_execution: batches per compiled step; ``params.steps_per_execution`` when None.
        epochs: at most this many epochs; ``params.epochs`` when None.
        callbacks: extra Keras callbacks, run after the metrics, the NaN stop and early stopping.
        augment_with: the fitted preprocessing state: when given, the fitted rows are augmented as
            ``params:modelling.augmentation`` says and the frozen transfer layers are fine-tuned in a second phase
            (:func:`fit_in_phases`); None fits once on the rows as they are.
        verbose: Keras ``fit`` verbosity.
    """
    import keras

    monitor, mode = monitored_metric(params, primary_metric)
    compiled = params
    if steps_per_execution is not None:
        compiled = params.model_copy(update={"steps_per_execution": steps_per_execution})
    with parts.head.distribute_strategy.scope():
        compile_model(parts.head, compiled, learning_rate=learning_rate)
    watched, watched_name = val, "val"
    if params.early_stopping.enabled and params.early_stopping.holdout > 0:
        fit_on, watched = split_holdout(
            fit_on, roles.target, params.early_stopping.holdout, seed, fit_name
        )
        watched_name = f"{fit_name} (early-stopping holdout)"
    y_fit = encode_labels(fit_on[roles.target], classes, fit_name)
    y_val = encode_labels(watched[roles.target], classes, watched_name)
    x_fit = prepare(parts.preprocessor, fit_on, roles)
    scores = epoch_metrics(
        (x_fit, y_fit),
        (prepare(parts.preprocessor, watched, roles), y_val),
        list(classes),
        roles.positive_class,
        extra=[monitor[len("val_") :]],
        seed=seed,
    )
    early = early_stopping(params, monitor, mode, y_val)
    # The metrics first: early stopping reads them from the epoch's logs.
    every = [
        scores,
        keras.callbacks.TerminateOnNaN(),
        *([early] if early is not None else []),
        *callbacks,
    ]
    sample_weight = balanced_sample_weights(y_fit) if params.class_weight == "balanced" else None
    run = {
        "epochs": params.epochs if epochs is None else epochs,
        "callbacks": every,
        "verbose": verbose,
    }
    if params.distribution == "multi_worker_mirrored":
        fitted = _fit_multi_worker(parts.head, x_fit, y_fit, sample_weight, params, seed, run)
    elif augment_with is None:
        fitted = parts.head.fit(
            x_fit,
            y_fit,
            sample_weight=sample_weight,
            batch_size=params.batch_size,
            shuffle=True,
            **run,
        )
    else:
        fitted = fit_in_phases(
            parts.head,
            params,
            early,
            # Only the fitted rows are augmented (params:modelling.augmentation), never val, never the model.
            **augmentation.fit_data(x_fit, y_fit, sample_weight, augment_with, roles, params, seed),
            **run,
        )
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    if early is not None and early.best_epoch is not None and monitor in history:
        best_epoch = int(early.best_epoch)
    else:
        best_epoch = len(history.get("loss", [])) - 1
    return HeadFit(history, best_epoch, early.patience if early is not None else None)


def _fit_multi_worker(head, x_fit, y_fit, sample_weight, params, seed, run) -> Any:  # noqa: PLR0913
    from .multi_worker import fit_multi_worker

    if params.augmentation.enabled or params.transfer.freeze:
        raise ValueError(
            "params:modelling.distribution multi_worker_mirrored trains without augmentation and frozen layers: "
            "set params:modelling.augmentation to 0 and transfer.freeze to [], or use distribution: default."
        )
    return fit_multi_worker(
        head, x_fit, y_fit, sample_weight, batch_size=params.batch_size, seed=seed, **run
    )


def _weights_finite(model: Any) -> bool:
    return all(
        np.isfinite(np.asarray(weight)).all()
        for weight in model.get_weights()
        if np.asarray(weight).dtype.kind == "f"
    )
