"""Fit the preprocessing on train, build the Keras model from parameters, train it.

:func:`train_model` is the one way the project trains a model: the modelling pipeline calls it once per seed and
tuning calls it once per trial (with its own callbacks). TensorFlow and Keras are imported inside the functions
that need them so that importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes
from deep_learning_workflow.metrics import GREATER_IS_BETTER, positive_index
from deep_learning_workflow.model_inputs import to_model_inputs
from deep_learning_workflow.parameters import parse

from .schema import ModellingParams

# Keras metrics compiled into every model, named like deep_learning_workflow.metrics; the monitored metric is
# added when it is another one, so a history key `val_<primary_metric>` always exists for early stopping and
# pruning. Each metric costs graph tracing and per-step work, hence not all of them by default.
DEFAULT_KERAS_METRICS = ("accuracy", "roc_auc", "pr_auc")


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite; the model is broken and must not be saved."""


class TrainingResult(NamedTuple):
    """A trained model and how it got there."""

    model: Any
    """The Keras model, weights of the best epoch restored when early stopping is on."""
    history: dict[str, list[float]]
    """Per-epoch ``loss``, ``val_loss`` and the metrics of :func:`keras_metrics` (train and ``val_``)."""
    best_epoch: int
    """0-based epoch whose weights the model holds."""
    classes: list[str]
    """The class of each probability column."""
    roles: ColumnRoles
    """The resolved column roles the model takes."""
    preprocessing: dict[str, Any]
    """The fitted preprocessing state (see :func:`fit_preprocessing`)."""


def as_params(params: ModellingParams | Mapping[str, Any]) -> ModellingParams:
    """The typed modelling parameters from their config dictionary (or unchanged when already typed)."""
    return (
        params
        if isinstance(params, ModellingParams)
        else parse(ModellingParams, params, "modelling")
    )


def as_roles(roles: ColumnRoles | Mapping[str, Any]) -> ColumnRoles:
    """The typed column roles from their config dictionary (or unchanged when already typed)."""
    return roles if isinstance(roles, ColumnRoles) else parse(ColumnRoles, roles, "columns")


def check_roles_for_modelling(
    frame: pd.DataFrame, roles: ColumnRoles, params: ModellingParams, dataset: str
) -> ColumnRoles:
    """Resolve the column roles on a table and check the modelling parameters that name columns.

    Raises:
        ValueError: naming the parameter key when a role or a per-column setting names a missing or wrong column,
            or when there are no feature columns.
    """
    resolved = resolve_roles(frame, roles, dataset)
    if not resolved.features:
        raise ValueError(
            f"params:columns leaves no feature column in '{dataset}'; list numeric, categorical or text columns."
        )
    if resolved.target in resolved.features or (resolved.key and resolved.key in resolved.features):
        raise ValueError(
            "params:columns lists the key or the target among the feature columns; remove it from the feature lists."
        )
    overlap = {
        c for c in resolved.numeric or [] if c in (resolved.categorical or []) or c in resolved.text
    }
    overlap |= {c for c in resolved.categorical or [] if c in resolved.text}
    if overlap:
        raise ValueError(
            f"params:columns gives the columns {sorted(overlap)} more than one role; keep one."
        )
    unknown = sorted(set(params.numeric.scaling_by_column) - set(resolved.numeric or []))
    if unknown:
        raise ValueError(
            f"params:modelling.numeric.scaling_by_column names {unknown}, which are not numeric feature columns "
            f"{resolved.numeric}."
        )
    return resolved


def fit_preprocessing(
    train: pd.DataFrame, roles: ColumnRoles, params: ModellingParams
) -> dict[str, Any]:
    """Learn every preprocessing value from the training rows.

    Args:
        train: the real training rows (never validation or test rows, never synthetic rows).
        roles: resolved column roles.
        params: modelling parameters.

    Returns:
        JSON-serialisable state: ``numeric[col]`` with ``fill_value``, ``indicator``, ``clip`` ([lower, upper] or
        None), ``scaling``, ``mean``, ``variance`` (the Normalization layer's values, of the imputed, clipped
        column); ``categorical[col]`` with ``vocabulary``; ``text[col]`` with ``vocabulary``.

    Raises:
        ValueError: when a numeric column has no value in train.
    """
    if train.empty:
        raise ValueError("The training split is empty; preprocessing cannot be fitted.")
    inputs = to_model_inputs(train, roles)
    settings = params.numeric
    numeric: dict[str, Any] = {}
    for column in roles.numeric or []:
        values = inputs[column].astype("float64")
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise ValueError(
                f"Numeric column '{column}' has no value in the training split; drop it from params:columns."
            )
        fill = float(np.median(present) if settings.imputation == "median" else np.mean(present))
        filled = np.where(np.isnan(values), fill, values)
        clip = None
        if settings.clip_quantiles is not None:
            clip = [float(q) for q in np.quantile(present, settings.clip_quantiles)]
            filled = np.clip(filled, *clip)
        scaling = settings.scaling_by_column.get(column, settings.scaling)
        if scaling == "standard":
            mean, variance = float(filled.mean()), float(filled.var())
        elif scaling == "minmax":
            mean, variance = float(filled.min()), float((filled.max() - filled.min()) ** 2)
        else:
            mean, variance = 0.0, 1.0
        indicator = settings.missing_indicator == "always" or (
            settings.missing_indicator == "auto" and bool(np.isnan(values).any())
        )
        numeric[column] = {
            "fill_value": fill,
            "indicator": indicator,
            "clip": clip,
            "scaling": scaling,
            "mean": mean,
            # A constant column would be divided by ~0; scaling it by 1 keeps it finite (and uninformative).
            "variance": variance if variance > 0 else 1.0,
        }
    categorical = {}
    for column in roles.categorical or []:
        counts = pd.Series(inputs[column]).value_counts()
        counts = counts[counts >= params.categorical.min_frequency]
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if params.categorical.max_categories is not None:
            ordered = ordered[: params.categorical.max_categories]
        categorical[column] = {"vocabulary": [str(value) for value, _ in ordered]}
    text = {
        column: {"vocabulary": _text_vocabulary(inputs[column], params)} for column in roles.text
    }
    return {"numeric": numeric, "categorical": categorical, "text": text}


def _text_vocabulary(values: np.ndarray, params: ModellingParams) -> list[str]:
    import keras

    layer = keras.layers.TextVectorization(
        max_tokens=params.text.max_tokens,
        standardize="lower_and_strip_punctuation",
        split="whitespace",
        output_mode="int",
    )
    layer.adapt(np.asarray(values, dtype=object).astype(str))
    # The first two entries are the padding token "" and "[UNK]", which the layer adds itself.
    return [str(token) for token in layer.get_vocabulary()[2:]]


class ModelParts(NamedTuple):
    """The model and two views of it that share its layers (and so its weights)."""

    model: Any
    """Raw records -> probabilities: the artifact (preprocessing layers, then the head)."""
    preprocessor: Any
    """Raw records -> the fixed preprocessing outputs (a dict by layer name); nothing in it is trained."""
    head: Any
    """Preprocessing outputs -> probabilities: the trainable layers (embeddings, hidden layers, output)."""


def build_model(
    preprocessing: Mapping[str, Any], roles: ColumnRoles, params: ModellingParams, n_classes: int
) -> Any:
    """The Keras model: one input per feature column, preprocessing layers, the MLP, softmax probabilities.

    Args:
        preprocessing: the state from :func:`fit_preprocessing`.
        roles: resolved column roles.
        params: modelling parameters.
        n_classes: number of target classes (2 for a binary target).

    Returns:
        An uncompiled functional ``keras.Model`` following the project's model contract (layer names by column).
    """
    return build_model_parts(preprocessing, roles, params, n_classes).model


def build_model_parts(
    preprocessing: Mapping[str, Any], roles: ColumnRoles, params: ModellingParams, n_classes: int
) -> ModelParts:
    """Build the model together with its preprocessor and head views (see :class:`ModelParts`).

    Training fits the head on preprocessed arrays computed once by the preprocessor: the string lookups then run
    once per row instead of once per row and epoch, and the weights learned are the model's own.
    """
    import keras

    from . import layers as custom

    if n_classes < 2:
        raise ValueError(
            f"The target has {n_classes} class in the training split; a classifier needs at least 2."
        )
    inputs: dict[str, Any] = {}
    dense: list[Any] = []
    ids: dict[str, tuple[Any, int, int]] = {}
    for column in roles.numeric or []:
        state = preprocessing["numeric"][column]
        raw = inputs[column] = keras.Input(shape=(1,), dtype="float32", name=column)
        value = custom.ImputeMissing(state["fill_value"], name=f"impute_{column}")(raw)
        if state["clip"] is not None:
            value = custom.ClipValues(*state["clip"], name=f"clip_{column}")(value)
        if state["scaling"] != "none":
            value = keras.layers.Normalization(
                mean=state["mean"], variance=state["variance"], name=f"scale_{column}"
            )(value)
        dense.append(value)
        if state["indicator"]:
            dense.append(custom.MissingIndicator(name=f"missing_{column}")(raw))
    for column in roles.categorical or []:
        vocabulary = preprocessing["categorical"][column]["vocabulary"]
        raw = inputs[column] = keras.Input(shape=(1,), dtype="string", name=column)
        one_hot = params.categorical.encoding == "one_hot"
        encoded = keras.layers.StringLookup(
            vocabulary=vocabulary or None,
            num_oov_indices=1,
            output_mode="one_hot" if one_hot else "int",
            name=f"lookup_{column}",
        )(raw)
        if one_hot:
            dense.append(encoded)
        else:
            ids[column] = (encoded, len(vocabulary) + 1, params.categorical.embedding_dim)
    for column in roles.text:
        vocabulary = preprocessing["text"][column]["vocabulary"]
        raw = inputs[column] = keras.Input(shape=(1,), dtype="string", name=column)
        tokens = keras.layers.TextVectorization(
            max_tokens=params.text.max_tokens,
            standardize="lower_and_strip_punctuation",
            split="whitespace",
            output_mode="int",
            output_sequence_length=params.text.output_sequence_length,
            vocabulary=vocabulary or None,
            name=f"vectorize_{column}",
        )(raw)
        ids[column] = (tokens, len(vocabulary) + 2, params.text.embedding_dim)

    # The fixed part ends in one matrix (`encoded`, or `features` when nothing is embedded) plus the integer ids
    # of embedded columns: the head then takes few inputs, which keeps each training step cheap.
    prepared: dict[str, Any] = {}
    if dense:
        name = "encoded" if ids else "features"
        prepared["encoded"] = (
            keras.layers.Concatenate(name=name)(dense) if len(dense) > 1 else dense[0]
        )
    prepared.update({column: tensor for column, (tensor, _, _) in ids.items()})
    # No masking in the embeddings: an all-padding (empty) text averages to the learned padding vector, not 0/0.
    embeddings = {
        column: keras.layers.Embedding(size, dim, name=f"embed_{column}")
        for column, (_, size, dim) in ids.items()
    }
    pools = {column: keras.layers.GlobalAveragePooling1D(name=f"pool_{column}") for column in ids}
    concatenate = keras.layers.Concatenate(name="features") if ids and len(prepared) > 1 else None
    regularizer = (
        keras.regularizers.L1L2(l1=params.l1, l2=params.l2) if params.l1 or params.l2 else None
    )
    stack: list[Any] = []
    for index, units in enumerate(params.hidden_units, start=1):
        if params.batch_norm:
            stack.append(
                keras.layers.Dense(
                    units, use_bias=False, kernel_regularizer=regularizer, name=f"hidden_{index}"
                )
            )
            stack.append(keras.layers.BatchNormalization(name=f"batch_norm_{index}"))
            stack.append(keras.layers.Activation(params.activation, name=f"activation_{index}"))
        else:
            stack.append(
                keras.layers.Dense(
                    units,
                    activation=params.activation,
                    kernel_regularizer=regularizer,
                    name=f"hidden_{index}",
                )
            )
        if params.dropout > 0:
            stack.append(keras.layers.Dropout(params.dropout, name=f"dropout_{index}"))
    stack.append(keras.layers.Dense(n_classes, activation="softmax", name="probabilities"))

    def head(tensors: Mapping[str, Any]) -> Any:
        parts = [tensors["encoded"]] if "encoded" in tensors else []
        parts.extend(pools[column](embeddings[column](tensors[column])) for column in ids)
        hidden = concatenate(parts) if concatenate is not None else parts[0]
        for layer in stack:
            hidden = layer(hidden)
        return hidden

    model = keras.Model(inputs=inputs, outputs=head(prepared), name="model")
    preprocessor = keras.Model(inputs=inputs, outputs=prepared, name="preprocessor")
    head_inputs = {
        key: keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=key)
        for key, tensor in prepared.items()
    }
    return ModelParts(
        model, preprocessor, keras.Model(inputs=head_inputs, outputs=head(head_inputs), name="head")
    )


def keras_metrics(
    classes: Sequence[str], positive_class: str | None, extra: Sequence[str] = ()
) -> list[Any]:
    """Keras metrics matching :func:`deep_learning_workflow.metrics.score` (AUCs on the positive class if binary).

    Args:
        classes: the class of each probability column.
        positive_class: for binary targets, the class the AUCs are taken on.
        extra: further metric names (e.g. the monitored one) beyond :data:`DEFAULT_KERAS_METRICS`.
    """
    import keras

    n_classes = len(classes)
    if n_classes == 2:
        column = positive_index(classes, positive_class)

        class PositiveClassAUC(keras.metrics.AUC):
            """AUC of the positive class's probability column, as metrics.score computes it for a binary target."""

            def update_state(self, y_true, y_pred, sample_weight=None):
                return super().update_state(y_true[:, column], y_pred[:, column], sample_weight)

        def auc(curve: str, name: str) -> Any:
            return PositiveClassAUC(curve=curve, name=name)
    else:

        def auc(curve: str, name: str) -> Any:
            # One-vs-rest AUC per class, averaged with equal weights (macro), as metrics.score computes it.
            return keras.metrics.AUC(curve=curve, name=name, multi_label=True, num_labels=n_classes)

    metrics = {
        "accuracy": lambda: keras.metrics.CategoricalAccuracy(name="accuracy"),
        "roc_auc": lambda: auc("ROC", "roc_auc"),
        "pr_auc": lambda: auc("PR", "pr_auc"),
        "log_loss": lambda: keras.metrics.CategoricalCrossentropy(name="log_loss"),
        # Mean over the k columns of squared errors: the binary Brier score, a k-th of the multi-class one.
        "brier": lambda: keras.metrics.MeanSquaredError(name="brier"),
        "f1_macro": lambda: keras.metrics.F1Score(average="macro", threshold=None, name="f1_macro"),
    }
    wanted = [
        *DEFAULT_KERAS_METRICS,
        *(name for name in extra if name not in DEFAULT_KERAS_METRICS),
    ]
    return [metrics[name]() for name in wanted if name in metrics]


def _optimizer(params: ModellingParams, learning_rate: float | None = None) -> Any:
    import keras

    rate = learning_rate or params.learning_rate
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=params.momentum)
    if params.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=params.weight_decay)
    return keras.optimizers.Adam(learning_rate=rate)


def compile_model(
    model: Any,
    params: ModellingParams,
    classes: Sequence[str],
    positive_class: str | None,
    learning_rate: float | None = None,
    extra_metrics: Sequence[str] = (),
) -> Any:
    """Compile with the configured optimiser, categorical cross-entropy and :func:`keras_metrics`."""
    model.compile(
        optimizer=_optimizer(params, learning_rate),
        loss="categorical_crossentropy",
        metrics=keras_metrics(classes, positive_class, extra_metrics),
        steps_per_execution=params.steps_per_execution,
    )
    return model


def distribution_strategy(name: str) -> Any:
    """The ``tf.distribute`` strategy of ``params:modelling.distribution``.

    ``multi_worker_mirrored`` reads the cluster from the ``TF_CONFIG`` environment variable that every worker is
    started with (TensorFlow's own convention).
    """
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def encode_labels(target: pd.Series, classes: Sequence[str], dataset: str) -> np.ndarray:
    """One-hot float32 labels in the order of ``classes``.

    Raises:
        ValueError: when the target has a missing value or a class the training split does not have.
    """
    labels = target.astype(str).to_numpy()
    unknown = sorted(set(labels[target.notna().to_numpy()]) - set(classes))
    if target.isna().any() or unknown:
        raise ValueError(
            f"Target column '{target.name}' of '{dataset}' has missing values or classes {unknown} absent from "
            f"the training classes {list(classes)}; clean or re-split the data."
        )
    return (labels[:, None] == np.asarray(classes, dtype=object)[None, :]).astype("float32")


def balanced_sample_weights(labels: np.ndarray) -> np.ndarray:
    """Weights n / (k * n_class) per row, from one-hot labels (scikit-learn's ``balanced``)."""
    counts = labels.sum(axis=0)
    present = counts > 0
    per_class = np.zeros_like(counts)
    per_class[present] = labels.shape[0] / (present.sum() * counts[present])
    return (labels @ per_class).astype("float32")


def monitored_metric(params: ModellingParams, primary_metric: str) -> tuple[str, str]:
    """The history key early stopping watches (``val_<metric>``) and its mode (``max`` or ``min``)."""
    name = params.early_stopping.monitor or primary_metric
    if name != "loss" and name not in GREATER_IS_BETTER:
        raise ValueError(
            f"params:problem.primary_metric '{name}' is not one of {sorted(GREATER_IS_BETTER)}."
        )
    return f"val_{name}", "max" if GREATER_IS_BETTER.get(name, False) else "min"


def prepare(preprocessor: Any, frame: pd.DataFrame, roles: ColumnRoles) -> dict[str, np.ndarray]:
    """The preprocessing outputs of a table's rows (the head's inputs), computed by the model's own layers.

    The layers run eagerly on the whole table at once: tracing a prediction function would cost more than the
    computation itself.
    """
    import tensorflow as tf

    inputs = {name: tf.constant(values) for name, values in to_model_inputs(frame, roles).items()}
    outputs = preprocessor(
        {name: tf.expand_dims(value, -1) for name, value in inputs.items()}, training=False
    )
    return {name: np.asarray(value) for name, value in outputs.items()}


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
) -> TrainingResult:
    """Fit the preprocessing on ``train``, build, compile and train one model; ``val`` only drives early stopping.

    Args:
        train: the real training rows; the preprocessing is adapted on them only, and the classes are theirs.
        val: validation rows, for early stopping (and the callbacks' ``val_`` logs) only.
        roles: column roles (``params:columns``), resolved on ``train`` here.
        params: ``params:modelling``.
        seed: the seed of this model (``params:seed`` + offset); set once, here, before building.
        fit_on: the rows the weights are fitted on, e.g. ``train_balanced``; ``train`` when None.
        callbacks: extra Keras callbacks (e.g. an Optuna pruning callback watching ``val_<primary_metric>``).
        primary_metric: ``params:problem.primary_metric``; early stopping watches it unless
            ``params:modelling.early_stopping.monitor`` says otherwise.
        verbose: Keras ``fit`` verbosity.

    Returns:
        The :class:`TrainingResult`.

    Raises:
        TrainingDivergedError: when the loss becomes NaN (training stops at once; nothing is returned).
        ValueError: on invalid parameters, roles naming missing columns, or unknown target classes.
    """
    import keras

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
    monitor, mode = monitored_metric(params, primary_metric)
    y_fit = encode_labels(
        fit_frame[roles.target], classes, "train_balanced" if fit_on is not None else "train"
    )
    y_val = encode_labels(val[roles.target], classes, "val")
    preprocessing = fit_preprocessing(train, roles, params)

    set_seed(seed)
    with distribution_strategy(params.distribution).scope():
        parts = build_model_parts(preprocessing, roles, params, len(classes))
        compile_model(
            parts.head,
            params,
            classes,
            roles.positive_class,
            extra_metrics=[monitor[len("val_") :]],
        )

    stop_rules: list[Any] = [keras.callbacks.TerminateOnNaN()]
    early = None
    if params.early_stopping.enabled:
        early = keras.callbacks.EarlyStopping(
            monitor=monitor,
            mode=mode,
            patience=params.early_stopping.patience,
            min_delta=params.early_stopping.min_delta,
            restore_best_weights=True,
        )
        stop_rules.append(early)
    sample_weight = balanced_sample_weights(y_fit) if params.class_weight == "balanced" else None
    fitted = parts.head.fit(
        prepare(parts.preprocessor, fit_frame, roles),
        y_fit,
        sample_weight=sample_weight,
        validation_data=(prepare(parts.preprocessor, val, roles), y_val),
        epochs=params.epochs,
        batch_size=params.batch_size,
        shuffle=True,
        callbacks=[*stop_rules, *callbacks],
        verbose=verbose,
    )
    model = parts.model
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    losses = np.asarray(history.get("loss", []), dtype="float64")
    if losses.size == 0 or not np.isfinite(losses).all() or not _weights_finite(model):
        epoch = int(np.argmin(np.isfinite(losses))) + 1 if losses.size else 1
        raise TrainingDivergedError(
            f"Training diverged (the loss became NaN or infinite at epoch {epoch} with seed {seed}); "
            "no model is kept. Lower params:modelling.learning_rate "
            f"(now {params.learning_rate}), turn on batch_norm, or check the inputs for extreme values."
        )
    if early is not None and early.best_epoch is not None and monitor in history:
        best_epoch = int(early.best_epoch)
    else:
        best_epoch = len(losses) - 1
    return TrainingResult(model, history, best_epoch, classes, roles, preprocessing)


def _weights_finite(model: Any) -> bool:
    return all(
        np.isfinite(np.asarray(weight)).all()
        for weight in model.get_weights()
        if np.asarray(weight).dtype.kind == "f"
    )


def overfit_one_batch(
    train: pd.DataFrame, roles: ColumnRoles, params: ModellingParams, seed: int
) -> dict[str, Any]:
    """Train the configured architecture on one small batch of training rows until it memorises them.

    Dropout and L1/L2 are switched off and Adam at ``sanity_check.learning_rate`` is used, so that only a wiring
    bug (labels not matching rows, features blanked by the preprocessing, an output of the wrong size) or a model
    far too small can keep the loss up.

    Returns:
        ``rows``, ``steps``, ``learning_rate``, ``initial_loss``, ``final_loss`` (cross-entropy on the batch, in
        inference mode, after training), ``accuracy``, ``max_loss`` and ``passed``.
    """
    check = params.sanity_check
    classes = target_classes(train[roles.target])
    batch = train.sample(n=min(check.rows, len(train)), random_state=seed)
    labels = encode_labels(batch[roles.target], classes, "train")
    plain = params.model_copy(update={"dropout": 0.0, "l1": 0.0, "l2": 0.0, "optimizer": "adam"})
    preprocessing = fit_preprocessing(train, roles, params)
    set_seed(seed)
    parts = build_model_parts(preprocessing, roles, plain, len(classes))
    compile_model(
        parts.head, plain, classes, roles.positive_class, learning_rate=check.learning_rate
    )
    prepared = prepare(parts.preprocessor, batch, roles)

    def loss_and_accuracy() -> tuple[float, float]:
        probabilities = np.asarray(parts.head(prepared, training=False), dtype="float64")
        picked = np.clip((probabilities * labels).sum(axis=1), 1e-12, 1.0)
        accuracy = float((probabilities.argmax(axis=1) == labels.argmax(axis=1)).mean())
        return float(-np.log(picked).mean()), accuracy

    initial_loss, _ = loss_and_accuracy()
    # The batch repeated `steps` times and not shuffled is one epoch of `steps` identical batches: one fit call
    # instead of `steps` epochs, each with its own per-epoch overhead.
    repeated = {name: np.concatenate([values] * check.steps) for name, values in prepared.items()}
    parts.head.fit(
        repeated,
        np.concatenate([labels] * check.steps),
        batch_size=len(batch),
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    final_loss, accuracy = loss_and_accuracy()
    return {
        "rows": len(batch),
        "steps": check.steps,
        "learning_rate": check.learning_rate,
        "initial_loss": initial_loss,
        "final_loss": final_loss,
        "accuracy": accuracy,
        "max_loss": check.max_loss,
        "passed": bool(np.isfinite(final_loss) and final_loss <= check.max_loss),
    }
