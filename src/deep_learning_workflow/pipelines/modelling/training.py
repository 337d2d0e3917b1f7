"""Fit the preprocessing on train, build the Keras model from parameters, train it.

:func:`train_model` is the one way the project trains a model: the modelling pipeline calls it once per seed and
tuning calls it once per trial (with its own callbacks). TensorFlow and Keras are imported inside the functions
that need them so that importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes, target_labels
from deep_learning_workflow.metrics import GREATER_IS_BETTER, positive_index, score
from deep_learning_workflow.model_inputs import to_model_inputs
from deep_learning_workflow.parameters import parse

from . import augmentation
from .schema import ModellingParams

# Metrics recorded after every epoch on the fitted rows and on validation (see epoch_metrics); the monitored metric
# is added when it is another one, so a history key `val_<primary_metric>` always exists for early stopping and
# pruning.
EPOCH_METRICS = ("accuracy", "roc_auc", "pr_auc")
# The training-side metrics of an epoch are scored on a fixed sample of this many fitted rows at most.
TRAIN_METRIC_ROWS = 10_000


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite; the model is broken and must not be saved."""


class TrainingResult(NamedTuple):
    """A trained model and how it got there."""

    model: Any
    """The Keras model, weights of the best epoch restored when early stopping is on."""
    history: dict[str, list[float]]
    """Per-epoch ``loss``, ``val_loss`` and the metrics of :func:`epoch_metrics` (train and ``val_``)."""
    best_epoch: int
    """0-based epoch whose weights the model holds."""
    classes: list[str]
    """The class of each probability column."""
    roles: ColumnRoles
    """The resolved column roles the model takes."""
    preprocessing: dict[str, Any]
    """The fitted preprocessing state (see :func:`fit_preprocessing`)."""
    preprocessor: Any = None
    """The model's preprocessing view (raw records -> the head's inputs), sharing its layers."""
    head: Any = None
    """The model's trained head (preprocessing outputs -> probabilities), sharing its layers."""


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


def epoch_metrics(
    fit: tuple[Mapping[str, np.ndarray], np.ndarray],
    validation: tuple[Mapping[str, np.ndarray], np.ndarray],
    classes: Sequence[str],
    positive_class: str | None,
    extra: Sequence[str] = (),
    seed: int = 0,
) -> Any:
    """A Keras callback writing the project's metrics of the epoch's weights into the epoch's logs.

    After each epoch it scores the head on the rows it is fitted on (``accuracy``, ``roc_auc``, ...) and on
    validation (``val_accuracy``, ``val_roc_auc``, ..., ``val_loss``) with :func:`deep_learning_workflow.metrics.score`,
    so early stopping and pruning watch exactly the metric evaluation reports. Computing them in NumPy instead of
    compiling Keras metrics halves a model's set-up (no metric graphs to trace), which is most of a short trial's
    cost. Put it first among the callbacks: the ones after it (early stopping, pruning, History) read its values.

    Args:
        fit: the head's inputs and one-hot labels of the fitted rows (a fixed sample of at most
            :data:`TRAIN_METRIC_ROWS` of them is scored).
        validation: the head's inputs and one-hot labels of the validation rows.
        classes: the class of each probability column.
        positive_class: for binary targets, the class the AUCs are taken on.
        extra: further metric names (e.g. the monitored one) beyond :data:`EPOCH_METRICS`.
        seed: seeds the choice of the scored sample of fitted rows.
    """
    import keras

    names = [*EPOCH_METRICS, *(name for name in extra if name not in EPOCH_METRICS)]
    names = [name for name in names if name in GREATER_IS_BETTER]
    inputs, labels = fit
    if len(labels) > TRAIN_METRIC_ROWS:
        rows = np.sort(
            np.random.default_rng(seed).choice(len(labels), TRAIN_METRIC_ROWS, replace=False)
        )
        inputs, labels = {k: v[rows] for k, v in inputs.items()}, labels[rows]
    class_names = np.asarray(classes, dtype=object)
    scored = {
        "": (inputs, labels, class_names[labels.argmax(axis=1)]),
        "val_": (validation[0], validation[1], class_names[validation[1].argmax(axis=1)]),
    }

    class EpochMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is None:
                return
            for prefix, (x, one_hot, names_of_rows) in scored.items():
                probabilities = model_probabilities(self.model, x)
                finite = bool(np.isfinite(probabilities).all())
                for name in names:
                    logs[f"{prefix}{name}"] = (
                        _score_or_nan(name, names_of_rows, probabilities, classes, positive_class)
                        if finite
                        else float("nan")
                    )
                if prefix:
                    picked = np.clip((probabilities * one_hot).sum(axis=1), 1e-7, 1.0)
                    # Keras' loss includes the regularisation penalties; so does this one.
                    penalty = float(sum(float(loss) for loss in self.model.losses))
                    logs["val_loss"] = float(-np.log(picked).mean()) + penalty

    return EpochMetrics()


def _score_or_nan(
    name: str,
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    positive_class: str | None,
) -> float:
    # A split too small to hold every class has no AUC; the epoch is then not judged on it (NaN never improves
    # early stopping and is not reported to the pruner) instead of stopping training.
    try:
        return score(name, labels, probabilities, classes, positive_class)
    except ValueError:
        return float("nan")


def model_probabilities(
    model: Any, inputs: Mapping[str, np.ndarray], rows: int = 8192
) -> np.ndarray:
    """A Keras model's probabilities for its dict of inputs, in inference mode, computed eagerly in large batches.

    Keras' ``predict`` would trace a new graph for every new model (a trial's, a fine-tuned one's), which costs more
    than the computation here.
    """
    total = len(next(iter(inputs.values())))
    parts = [
        np.asarray(
            model({k: v[start : start + rows] for k, v in inputs.items()}, training=False),
            dtype="float64",
        )
        for start in range(0, total, rows)
    ]
    return np.concatenate(parts)


def validation_score(
    model: Any, val: pd.DataFrame, roles: ColumnRoles, classes: Sequence[str], metric: str
) -> float:
    """A model's ``metric`` on the validation rows it takes raw; NaN when its probabilities are not finite."""
    if val.empty:
        raise ValueError("The validation split 'val' is empty; the model cannot be scored.")
    inputs = {name: values.reshape(-1, 1) for name, values in to_model_inputs(val, roles).items()}
    probabilities = model_probabilities(model, inputs)
    if not np.isfinite(probabilities).all():
        return float("nan")
    labels = target_labels(val[roles.target]).to_numpy()
    return score(metric, labels, probabilities, list(classes), roles.positive_class)


def _optimizer(params: ModellingParams, learning_rate: float | None = None) -> Any:
    import keras

    rate = learning_rate or params.learning_rate
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=params.momentum)
    if params.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=params.weight_decay)
    return keras.optimizers.Adam(learning_rate=rate)


def compile_model(model: Any, params: ModellingParams, learning_rate: float | None = None) -> Any:
    """Compile with the configured optimiser and categorical cross-entropy; metrics come from :func:`epoch_metrics`."""
    model.compile(
        optimizer=_optimizer(params, learning_rate),
        loss="categorical_crossentropy",
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


def early_stopping_patience(params: ModellingParams, val_labels: np.ndarray | None) -> int:
    """The patience of ``params:modelling.early_stopping``; ``auto`` resolved from the validation labels.

    A score on n rows of the rarest class is noisy in proportion to 1 / sqrt(n), so ``auto`` waits
    ``min_patience * sqrt(reference_rows / n)`` epochs (rounded up), between ``min_patience`` and ``max_patience``.

    Args:
        params: modelling parameters.
        val_labels: one-hot validation labels (:func:`encode_labels`); None or empty gives ``max_patience``.
    """
    settings = params.early_stopping
    if settings.patience != "auto":
        return int(settings.patience)
    counts = np.asarray(val_labels).sum(axis=0) if val_labels is not None else np.zeros(0)
    counts = counts[counts > 0]
    if counts.size == 0:
        return settings.max_patience
    wanted = math.ceil(
        settings.min_patience * math.sqrt(settings.reference_rows / counts.min()) - 1e-9
    )
    return int(min(settings.max_patience, max(settings.min_patience, wanted)))


def early_stopping(
    params: ModellingParams, monitor: str, mode: str, val_labels: np.ndarray | None = None
) -> Any:
    """The early-stopping callback of ``params:modelling.early_stopping`` (best weights restored), or None when off.

    ``val_labels`` (one-hot) resolve ``patience: auto`` (see :func:`early_stopping_patience`).
    """
    import keras

    if not params.early_stopping.enabled:
        return None
    return keras.callbacks.EarlyStopping(
        monitor=monitor,
        mode=mode,
        patience=early_stopping_patience(params, val_labels),
        min_delta=params.early_stopping.min_delta,
        restore_best_weights=True,
    )


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
        transfer_sources: the warm-start model and word vectors (:class:`.transfer.TransferSources`) that
            ``params:modelling.transfer`` starts layers from; see :mod:`.transfer`.

    Returns:
        The :class:`TrainingResult`.

    Raises:
        TrainingDivergedError: when the loss becomes NaN (training stops at once; nothing is returned).
        ValueError: on invalid parameters, roles naming missing columns, or unknown target classes.
    """
    import keras

    from . import transfer

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
        transfer.warm_start(parts, roles, params, transfer_sources)
        compile_model(parts.head, params)

    early = early_stopping(params, monitor, mode, y_val)
    stop_rules: list[Any] = [
        keras.callbacks.TerminateOnNaN(),
        *([early] if early is not None else []),
    ]
    sample_weight = balanced_sample_weights(y_fit) if params.class_weight == "balanced" else None
    x_fit = prepare(parts.preprocessor, fit_frame, roles)
    scores = epoch_metrics(
        (x_fit, y_fit),
        (prepare(parts.preprocessor, val, roles), y_val),
        classes,
        roles.positive_class,
        extra=[monitor[len("val_") :]],
        seed=seed,
    )
    fitted = transfer.fit_in_phases(
        parts.head,
        params,
        early,
        # Only the fitted rows are augmented (when params:modelling.augmentation is on), never val, never the model.
        **augmentation.fit_data(x_fit, y_fit, sample_weight, preprocessing, roles, params, seed),
        epochs=params.epochs,
        callbacks=[scores, *stop_rules, *callbacks],
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
    return TrainingResult(
        model, history, best_epoch, classes, roles, preprocessing, parts.preprocessor, parts.head
    )


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
    compile_model(parts.head, plain, learning_rate=check.learning_rate)
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
